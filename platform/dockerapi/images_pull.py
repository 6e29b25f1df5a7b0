"""POST /images/create (pull), POST /images/{name}/push, GET /images/search.

Each is the REST API's image action (registries/services.py: the same gate decisions,
registry.use, the host-local address rule, the tag-ownership rule) queued on the host, with
Docker's progress stream read from the Operation. A reference whose registry Berth has
configured uses that registry's stored credentials when the caller may use it (registry.use);
the client's X-Registry-Auth is not used (credentials live in Berth's registries).
"""

from django.http import JsonResponse
from registries import refs, services
from registries.models import Registry

from dockerapi import images_archive, images_quota
from dockerapi.errors import bad_request, not_supported
from dockerapi.images_common import (
    check_ref,
    error_line,
    find_images,
    finish,
    follow,
    joined,
    line,
    short,
    team_and_host,
)
from images import ownership
from rbac import gate

_PLATFORMS = (None, "", "linux", "linux/amd64", "linux/arm64")
_SEARCH_FILTERS = {"is-official", "is-automated", "stars"}


def configured_registry(user, ref: str):
    """The configured registry that owns `ref` if the caller may use it (else None)."""
    address = refs.registry_of(ref)
    usable = gate.restrict(Registry.objects.filter(address=address), user, "registry.use")
    return usable.first()


def create(call):
    """POST /images/create: pull `fromImage`[:`tag`], or import a rootfs tar with `fromSrc`."""
    if call.query.get("fromSrc"):
        return images_archive.import_rootfs(call)
    name = call.query.get("fromImage") or ""
    if not name:
        raise bad_request("give fromImage (a pull) or fromSrc (an import)")
    if call.query.get("platform") not in _PLATFORMS:
        raise not_supported(f"the platform {call.query['platform']!r}")
    ref = check_ref(joined(name, call.query.get("tag")))
    summary = call.summary(ref=ref)
    # Refused (and audited) before a team or host is chosen, as POST /api/v1/images/pull/ does.
    gate.require(call.user, "image.pull", resource="image", summary=summary)
    team, host = team_and_host(call)
    images_quota.check(call, "image.pull", team, host, refs=[ref], summary=summary)
    registry = configured_registry(call.user, ref)
    op = services.do_pull_image(
        call.user,
        ref=ref,
        host=host,
        team=team,
        registry=registry.pk if registry else None,
        summary=summary,
    )
    return follow(op, _PullRender(ref))


class _LayerLines:
    """Docker's per-layer lines for the layer states the agent records, each change once."""

    def __init__(self):
        self.seen: dict[str, tuple] = {}

    def lines(self, layers: dict):
        for key, info in layers.items():
            if not key.startswith("sha256:"):
                continue  # image-wide events (Resolving, Extracting) have their own lines
            status = info.get("status") or ""
            state = (status, info.get("current"), info.get("total"))
            if self.seen.get(key) == state:
                continue
            self.seen[key] = state
            detail = {}
            if status in ("Downloading", "Pushing") and info.get("total"):
                detail = {"current": info.get("current") or 0, "total": info["total"]}
            yield line(status=status, progressDetail=detail, id=short(key))


class _PullRender(_LayerLines):
    """Pull lines: 'Pulling from', each layer, Digest, Status (or the error)."""

    def __init__(self, ref: str):
        super().__init__()
        self.ref = ref
        self.started = False

    def __call__(self, op, layers, _text):
        if not self.started:
            self.started = True
            name, tag = _name_and_tag(self.ref)
            yield line(status=f"Pulling from {name}", id=tag)
        yield from self.lines(layers)
        if op.state == op.State.FAILED:
            yield error_line(op.error or "the pull failed")
        elif op.state == op.State.SUCCEEDED:
            result = op.result or {}
            for key, info in layers.items():
                if key.startswith("sha256:") and info.get("status") == "Download complete":
                    yield line(status="Pull complete", progressDetail={}, id=short(key))
            if result.get("digest"):
                yield line(status=f"Digest: {result['digest']}")
            shown = ownership.canonical(self.ref)
            if result.get("downloaded"):
                yield line(status=f"Status: Downloaded newer image for {shown}")
            else:
                yield line(status=f"Status: Image is up to date for {shown}")


def _name_and_tag(ref: str) -> tuple[str, str]:
    name, _, digest = ref.partition("@")
    if digest:
        return name, digest
    slash, colon = name.rfind("/"), name.rfind(":")
    return (name[:colon], name[colon + 1 :]) if colon > slash else (name, "latest")


def push(call, ref):
    """POST /images/{name}/push?tag=: push the local image under name:tag to its registry."""
    tag = call.query.get("tag") or None
    target = check_ref(joined(ref, tag), "push target")
    if "@" in target:
        raise bad_request("push to a tag, not a digest")
    target = ownership.canonical(target) if not refs.has_host(target) else target
    if refs.has_host(target) and ":" not in target.rsplit("/", 1)[-1]:
        target = f"{target}:latest"
    summary = call.summary(target=target)
    gate.require(call.user, "image.push", resource="image", summary=summary)
    image = find_images(call, target, "image.push")[0]
    found = configured_registry(call.user, target)
    registry, use = services.usable_registry(
        call.user, found.pk if found else None, summary=summary
    )
    services.check_reachable(call.user, target, registry, summary=summary)
    decision = gate.require(call.user, "image.push", image, summary=summary)
    op = services.do_image_operation(
        decision,
        kind="image.push",
        host=image.host,
        team=image.team,
        target_id=image.pk,
        params={"target": target, "registry": registry.pk if registry else None},
        acting_user=call.user,
        summary=summary,
        extra=[use],
    )
    return follow(op, _PushRender(target))


class _PushRender(_LayerLines):
    """Push lines: 'The push refers to', each layer, then `tag: digest: ... size: ...`."""

    def __init__(self, target: str):
        super().__init__()
        self.target = target
        self.started = False

    def __call__(self, op, layers, _text):
        if not self.started:
            self.started = True
            name, _ = _name_and_tag(self.target)
            yield line(status=f"The push refers to repository [{name}]")
        yield from self.lines(layers)
        if op.state == op.State.FAILED:
            yield error_line(op.error or "the push failed")
        elif op.state == op.State.SUCCEEDED:
            digest = (op.result or {}).get("digest") or ""
            _, tag = _name_and_tag(self.target)
            yield line(status=f"{tag}: digest: {digest} size: 0")
            yield line(progressDetail={}, aux={"Tag": tag, "Digest": digest, "Size": 0})


def search(call):
    """GET /images/search?term=&limit=&filters=: a configured registry's catalog when the term
    names one (registry/term), else Docker Hub's search, as POST /api/v1/images/search/."""
    term = (call.query.get("term") or "").strip()
    if not term:
        raise bad_request("term is required")
    # The term is kept in the Operation's parameters: PostgreSQL's jsonb takes no NUL, and no
    # image name holds a control character.
    if any(ord(c) < 32 or ord(c) == 127 for c in term):
        raise bad_request("term must be printable text")
    limit = call.integer("limit", 25)
    if limit is None or not 1 <= limit <= 100:
        raise bad_request("limit must be between 1 and 100")
    filters = call.filters(_SEARCH_FILTERS)
    summary = call.summary(term=term)
    decision = gate.require(call.user, "image.pull", resource="image", summary=summary)
    registry = use = None
    words = term
    if refs.has_host(term):
        address, _, words = term.partition("/")
        found = gate.restrict(Registry.objects.filter(address=address), call.user, "registry.use")
        if found.first() is None:
            raise bad_request(f"unknown registry {address!r}: Berth searches registries it has")
        registry, use = services.usable_registry(call.user, found.first().pk, summary=summary)
    _, host = team_and_host(call)
    if registry is None and not words.strip():
        raise bad_request("give a search term")
    op = services.do_image_operation(
        decision,
        kind="image.search",
        host=host,
        acting_user=call.user,
        params={"term": words, "registry": registry.pk if registry else None, "tags": False},
        summary=summary,
        extra=[use],
    )
    op = finish(op, 30.0)
    results = [
        {
            "name": item.get("name", ""),
            "description": item.get("description", ""),
            "star_count": item.get("stars", 0),
            "is_official": bool(item.get("official")),
            "is_automated": False,
        }
        for item in (op.result or {}).get("results") or []
    ]
    results = [r for r in results if _search_match(r, filters)]
    return JsonResponse(results[:limit], safe=False)


def _search_match(result: dict, filters: dict) -> bool:
    for value in filters.get("is-official", []):
        if (value.lower() == "true") != result["is_official"]:
            return False
    for value in filters.get("is-automated", []):
        if value.lower() == "true":
            return False
    for value in filters.get("stars", []):
        if not value.isdigit():
            raise bad_request(f"invalid filter 'stars={value}'")
        if result["star_count"] < int(value):
            return False
    return True
