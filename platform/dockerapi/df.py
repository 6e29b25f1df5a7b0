"""GET /system/df: disk use of what the caller may see (images, containers, volumes).

Sizes are what Berth's rows know: an image's size from the host's store; containers and
volumes report 0 (their writable layers and data are measured on the host, which this read
does not ask for) rather than a made-up number.
"""

from django.http import JsonResponse

from containers import references
from containers.models import Container
from containers.not_removed import NOT_REMOVED
from dockerapi import render
from images.models import Image
from rbac import gate
from volumes.models import Volume


def _normal(ref: str) -> str:
    name = ref.split("/", 1)[1] if ref.startswith("docker.io/library/") else ref
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last or "@" in name else f"{name}:latest"


def df(call):
    """The caller's images, containers and volumes with what uses what."""
    summary = call.summary()
    gate.authorize(call.user, "container.view", resource="container", summary=summary)
    containers = list(
        gate.restrict(
            Container.objects.select_related("team", "host").filter(NOT_REMOVED),
            call.user,
            "container.view",
        )
    )
    images_used: dict[str, int] = {}
    volumes_used: dict[tuple[int, str], int] = {}
    for container in containers:
        ref = _normal(container.image)
        images_used[ref] = images_used.get(ref, 0) + 1
        for name in references.volume_names(container.spec or {}):
            key = (container.host_id, name)
            volumes_used[key] = volumes_used.get(key, 0) + 1
    images, seen, layers = [], set(), 0
    for image in gate.restrict(Image.objects.all(), call.user, "image.view"):
        if image.image_id in seen:
            continue
        seen.add(image.image_id)
        layers += image.size or 0
        moment = image.created or image.created_at
        images.append(
            {
                "Id": image.image_id,
                "ParentId": "",
                "RepoTags": image.repo_tags or [],
                "RepoDigests": [],
                "Created": int(moment.timestamp()) if moment else 0,
                "Size": image.size or 0,
                "SharedSize": 0,
                "VirtualSize": image.size or 0,
                "Labels": {},
                "Containers": sum(images_used.get(t, 0) for t in image.repo_tags or []),
            }
        )
    volumes = [
        {
            "Name": v.name,
            "Driver": v.driver,
            "Mountpoint": "",
            "CreatedAt": v.created_at.isoformat().replace("+00:00", "Z"),
            "Labels": v.labels or {},
            "Scope": "local",
            "Options": v.options or {},
            "UsageData": {"Size": 0, "RefCount": volumes_used.get((v.host_id, v.name), 0)},
        }
        for v in gate.restrict(Volume.objects.all(), call.user, "volume.view")
    ]
    rows = [render.summary(c) | {"SizeRw": 0, "SizeRootFs": 0} for c in containers]
    return JsonResponse(
        {
            "LayersSize": layers,
            "Images": images,
            "Containers": rows,
            "Volumes": volumes,
            "BuildCache": [],
        }
    )
