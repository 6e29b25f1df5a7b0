"""/images/json and /images/{name}/json: the images the caller may see (read only here)."""

import fnmatch

from django.http import JsonResponse

from dockerapi.errors import DockerError
from images.models import Image
from rbac import gate


def _visible(call):
    return gate.restrict(Image.objects.select_related("host"), call.user, "image.view")


def _created(image) -> int:
    moment = image.created or image.created_at
    return int(moment.timestamp()) if moment else 0


def _labels(image) -> dict:
    config = (image.config or {}).get("config") or (image.config or {}).get("Config") or {}
    return config.get("Labels") or {}


def list_(call):
    """GET /images/json."""
    gate.authorize(call.user, "image.view", resource="image", summary=call.summary())
    filters = call.filters({"reference", "label", "dangling", "before", "since"})
    seen, found = set(), []
    for image in _visible(call):
        if image.image_id in seen:
            continue  # the same image on several hosts is one image to a Docker client
        if not _matches(image, filters):
            continue
        seen.add(image.image_id)
        found.append(
            {
                "Id": image.image_id,
                "ParentId": "",
                "RepoTags": image.repo_tags or [],
                "RepoDigests": [],
                "Created": _created(image),
                "Size": image.size,
                "SharedSize": -1,
                "VirtualSize": image.size,
                "Labels": _labels(image),
                "Containers": -1,
            }
        )
    return JsonResponse(found, safe=False)


def _matches(image, filters: dict) -> bool:
    """Docker's `reference` (a name or name:tag glob), `dangling` and `label` filters."""
    tags = image.repo_tags or []
    wanted = filters.get("reference")
    if wanted and not any(
        fnmatch.fnmatchcase(tag, pattern) or fnmatch.fnmatchcase(tag.rsplit(":", 1)[0], pattern)
        for tag in tags
        for pattern in wanted
    ):
        return False
    dangling = filters.get("dangling")
    if dangling and (dangling[-1].lower() in ("true", "1")) != (not tags):
        return False
    labels = _labels(image)
    for value in filters.get("label", []):
        key, sep, want = value.partition("=")
        if key not in labels or (sep and labels[key] != want):
            return False
    return True


def _normal(ref: str) -> str:
    name = ref.split("/", 1)[1] if ref.startswith("docker.io/library/") else ref
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last or "@" in name else f"{name}:latest"


def inspect(call, ref):
    """GET /images/{name}/json by tag, id or id prefix."""
    visible = list(_visible(call))
    wanted = _normal(ref)
    found = [i for i in visible if wanted in (i.repo_tags or []) or ref in (i.repo_tags or [])]
    if not found:
        prefix = ref.removeprefix("sha256:")
        found = (
            [i for i in visible if i.image_id.removeprefix("sha256:").startswith(prefix)]
            if len(prefix) >= 4
            else []
        )
    if not found:
        gate.authorize(call.user, "image.view", resource="image", summary=call.summary())
        raise DockerError(404, f"No such image: {ref}")
    image = found[0]
    gate.authorize(call.user, "image.view", image, summary=call.summary())
    config = image.config or {}
    return JsonResponse(
        {
            "Id": image.image_id,
            "RepoTags": image.repo_tags or [],
            "RepoDigests": [],
            "Parent": "",
            "Comment": "",
            "Created": (image.created or image.created_at).isoformat().replace("+00:00", "Z"),
            "Config": config.get("config") or config.get("Config") or {},
            "Architecture": config.get("architecture", "amd64"),
            "Os": config.get("os", "linux"),
            "Size": image.size,
            "RootFS": config.get("rootfs") or {"Type": "layers", "Layers": []},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        }
    )
