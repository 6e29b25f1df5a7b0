"""POST /containers/prune, /networks/prune, /volumes/prune (each removal one gate decision) and
/build/prune (the build cache, one image.prune decision and Operation per host).

The prune itself is allowed by the resource's delete permission (audited once); every object
removed is then its own decision and Operation, as a remove would be. Objects the gate
refuses are left alone (they are not the caller's to prune), never half-removed.
"""

from datetime import UTC, datetime, timedelta

from django.http import JsonResponse
from django.utils import timezone
from registries import services as registry_services

from containers import references, services
from containers.models import Container
from containers.not_removed import NOT_REMOVED
from dockerapi import containers as docker_containers
from dockerapi import hostres, images_manage, render
from dockerapi.errors import bad_request, not_supported
from dockerapi.images_common import finish
from dockerapi.networks import PREDEFINED
from dockerapi.refs import docker_id
from networks.models import Network
from rbac import gate
from rbac.errors import AccessDenied
from volumes.models import Volume

_STOPPED = ("exited", "created", "dead")
ANONYMOUS_LABEL = "com.docker.volume.anonymous"


def _until(filters: dict):
    values = filters.get("until") or []
    if not values:
        return None
    raw = values[-1]
    try:
        return datetime.fromtimestamp(float(raw), tz=UTC)
    except ValueError:
        pass
    try:
        return timezone.now() - _duration(raw)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"invalid until {raw!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _duration(raw: str) -> timedelta:
    """Go's durations as the CLI passes them: 10m, 1h30m, 45s."""
    total, number = 0.0, ""
    units = {"h": 3600, "m": 60, "s": 1}
    if not raw or raw[-1] not in units:
        raise ValueError(raw)
    for char in raw:
        if char.isdigit() or char == ".":
            number += char
        elif char in units and number:
            total += float(number) * units[char]
            number = ""
        else:
            raise ValueError(raw)
    return timedelta(seconds=total)


def _labels_match(labels: dict, filters: dict) -> bool:
    for value in filters.get("label", []):
        key, sep, want = value.partition("=")
        if key not in labels or (sep and labels[key] != want):
            return False
    for value in filters.get("label!", []):
        key, sep, want = value.partition("=")
        if key in labels and (not sep or labels[key] == want):
            return False
    return True


def _prune(call, rows, remove) -> tuple[list, int]:
    """Remove each row the gate allows; (names removed, operations finished)."""
    removed, ops = [], []
    for row in rows:
        try:
            ops.append((row, remove(row)))
        except AccessDenied:
            continue  # audited as denied by the gate; not the caller's to prune
    for row, op in ops:
        if op is not None:
            docker_containers.finish(op)
        removed.append(row)
    return removed


def containers(call):
    """POST /containers/prune?filters= (until, label, label!): stopped containers."""
    summary = call.summary()
    filters = call.filters({"until", "label", "label!"})
    until = _until(filters)
    gate.authorize(call.user, "container.delete", resource="container", summary=summary)
    rows = gate.restrict(
        Container.objects.select_related("team", "host").filter(NOT_REMOVED),
        call.user,
        "container.delete",
    )
    stopped = [
        c
        for c in rows
        if render.status_of(c) in _STOPPED
        # A container being started (created, wanted running) is not stopped yet.
        and not (render.status_of(c) == "created" and c.desired_state == Container.Desired.RUNNING)
        and (until is None or c.created_at < until)
        and _labels_match(c.labels or {}, filters)
    ]
    ids = {c.pk: docker_id(c) for c in stopped}
    removed = _prune(
        call,
        stopped,
        lambda c: services.do_container_verb(
            c, "remove", acting_user=call.user, params={"force": False}, summary=summary
        ),
    )
    return JsonResponse(
        {"ContainersDeleted": [ids[c.pk] for c in removed] or None, "SpaceReclaimed": 0}
    )


def _in_use(host_ids, names_of) -> set[tuple[int, str]]:
    used = set()
    for host_id in host_ids:
        for spec in references._live_containers(host_id).values_list("spec", flat=True):
            used.update((host_id, name) for name in names_of(spec or {}))
    return used


def networks(call):
    """POST /networks/prune?filters= (until, label, label!): networks no container uses."""
    summary = call.summary()
    filters = call.filters({"until", "label", "label!"})
    until = _until(filters)
    gate.authorize(call.user, "network.delete", resource="network", summary=summary)
    rows = list(
        gate.restrict(
            Network.objects.select_related("team", "host"), call.user, "network.delete"
        ).exclude(name__in=PREDEFINED)
    )
    used = _in_use({n.host_id for n in rows}, references.network_names)
    unused = [
        n
        for n in rows
        if (n.host_id, n.name) not in used
        and (until is None or n.created_at < until)
        and _labels_match(n.labels or {}, filters)
    ]
    removed = _prune(call, unused, lambda n: _remove_row(call, n, "network"))
    return JsonResponse({"NetworksDeleted": [n.name for n in removed] or None})


def volumes(call):
    """POST /volumes/prune?filters= (label, label!, all): volumes no container uses; since API
    1.42 only anonymous ones unless all=true (Berth makes none, so then nothing)."""
    summary = call.summary()
    filters = call.filters({"label", "label!", "all"})
    everything = call.version < "1.42" or any(
        v.lower() in ("1", "true") for v in filters.get("all", [])
    )
    gate.authorize(call.user, "volume.delete", resource="volume", summary=summary)
    rows = list(
        gate.restrict(Volume.objects.select_related("team", "host"), call.user, "volume.delete")
    )
    used = _in_use({v.host_id for v in rows}, references.volume_names)
    unused = [
        v
        for v in rows
        if (v.host_id, v.name) not in used
        and (everything or ANONYMOUS_LABEL in (v.labels or {}))
        and _labels_match(v.labels or {}, filters)
    ]
    removed = _prune(call, unused, lambda v: _remove_row(call, v, "volume"))
    return JsonResponse({"VolumesDeleted": [v.name for v in removed] or None, "SpaceReclaimed": 0})


def _remove_row(call, obj, resource):
    """hostres.remove waits for its Operation itself; nothing is left to wait for here."""
    hostres.remove(
        call, obj, resource=resource, params={"force": False} if resource == "volume" else None
    )
    return None


_BUILD_FILTERS = {"until", "id", "parent", "type", "description", "inuse", "shared", "private"}


def build(call):
    """POST /build/prune?all=&keep-storage=&filters=: the build cache of each host the caller
    may prune (image.prune, decided and audited per host as POST /images/prune): entries
    holding a layer no image uses, every entry with all=true, and the layers only they held."""
    filters = call.filters(_BUILD_FILTERS)
    if any(filters.values()):
        raise not_supported(f"build cache prune filter {sorted(k for k in filters)[0]!r}")
    everything = call.flag("all")
    keep = call.integer("keep-storage", 0) or call.integer("reserved-space", 0)
    if keep:
        raise not_supported("build cache prune --keep-storage")
    summary = call.summary()
    plans = images_manage.prune_plans(call, summary)
    deleted, reclaimed = [], 0
    for host, decision in plans:
        op = registry_services.do_image_operation(
            decision,
            kind="image.prune",
            host=host,
            acting_user=call.user,
            params={"all": everything, "cache_only": True},
            summary=summary | {"build_cache": True},
        )
        result = finish(op).result or {}
        deleted.extend(str(key) for key in result.get("entries") or [])
        reclaimed += int(result.get("bytes") or 0)
    return JsonResponse({"CachesDeleted": deleted or None, "SpaceReclaimed": reclaimed})
