"""References from a container spec to other objects, bound once to the objects the gate saw.

A spec names other objects: containers whose namespaces it joins (`namespaces.<kind>` and
`network.mode` as `container:<ref>`), containers it links to (`network.links`), named volumes
and networks. Checking a name among the caller's rows and letting the host look the name up
again later lets a stale or reused name reach another team's object. So the gate's create
check calls `bind()`: each container reference must name exactly one live container of the
same team on the same host, and is rewritten to that container's runtime id, which the
runtime only ever reads as an id. Volumes and networks are names that the database keeps
unique per host, so they are bound to their owning row: another team's is refused, a new
volume becomes a row of the caller's team. The host agent calls `verify()` on the stored spec
before every create or start (defense in depth): what it runs must still be bound this way.
"""

import re

from django.db.models import Q

FULL_ID_RE = re.compile(r"^[0-9a-f]{64}$")  # runtime ids; mirrors runtime.spec.FULL_ID_RE
DEFAULT_NETWORK = "bridge"
JOINABLE = ("running", "paused")
CONTAINER_PREFIX = "container:"


def container_refs(spec: dict) -> list[tuple[str, str]]:
    """Every container reference of a spec as (where, reference)."""
    refs = []
    for kind, value in sorted((spec.get("namespaces") or {}).items()):
        if isinstance(value, str) and value.startswith(CONTAINER_PREFIX):
            refs.append((f"namespaces.{kind}", value.removeprefix(CONTAINER_PREFIX)))
    network = spec.get("network") or {}
    mode = network.get("mode")
    if isinstance(mode, str) and mode.startswith(CONTAINER_PREFIX):
        refs.append(("network.mode", mode.removeprefix(CONTAINER_PREFIX)))
    for link in network.get("links") or []:
        if isinstance(link, str):
            refs.append(("network.links", link.partition(":")[0]))
    return refs


def volume_names(spec: dict) -> list[str]:
    """The named volumes a spec mounts."""
    return [
        m["source"]
        for m in spec.get("mounts") or []
        if isinstance(m, dict) and m.get("type") == "volume" and isinstance(m.get("source"), str)
    ]


def network_names(spec: dict) -> list[str]:
    """The networks a spec joins by name."""
    return [n for n in (spec.get("network") or {}).get("networks") or [] if isinstance(n, str)]


def _live_containers(host_id):
    from containers.models import Container

    return Container.objects.filter(host_id=host_id).exclude(
        Q(observed_state=Container.Observed.REMOVED) | Q(desired_state=Container.Desired.REMOVED)
    )


def _resolve_container(ref: str, *, team_id, host_id) -> tuple[object | None, str]:
    """The one live container of this team and host that `ref` names, or (None, problem)."""
    from containers.models import Container

    match = Q(name=ref) | Q(runtime_id=ref) if FULL_ID_RE.match(ref) else Q(name=ref)
    if ref.isascii() and ref.isdigit():
        match |= Q(pk=int(ref))
    mine = list(_live_containers(host_id).filter(match, team_id=team_id)[:2])
    if len(mine) > 1:
        return None, f"container {ref!r} is ambiguous (a name and an id); name it by its id"
    if not mine:
        # Another team's container and no container at all read the same: no probing.
        gone = Container.objects.filter(host_id=host_id, team_id=team_id, name=ref).exists()
        if gone:
            return None, f"container {ref!r} was removed"
        return None, f"no container {ref!r} of this team on this host"
    target = mine[0]
    if target.observed_state not in JOINABLE or not target.runtime_id:
        return None, f"container {ref!r} is not running (it is {target.observed_state})"
    return target, ""


def bind(spec: dict, *, team_id, host_id) -> list[str]:
    """Resolve every reference of `spec` (rewriting container references to runtime ids);
    returns the problems, empty when every reference is one object this team may use."""
    problems = []
    bound = {}
    for where, ref in container_refs(spec):
        if ref in bound:
            continue
        target, problem = _resolve_container(ref, team_id=team_id, host_id=host_id)
        if problem:
            problems.append(f"{where}: {problem}")
        else:
            bound[ref] = target
    if not problems:
        _rewrite(spec, bound)
    problems += _foreign_rows(spec, team_id=team_id, host_id=host_id)
    return problems


def _rewrite(spec: dict, bound: dict) -> None:
    """Put runtime ids in place of the references; a link keeps the name as its alias."""
    for kind, value in list((spec.get("namespaces") or {}).items()):
        if isinstance(value, str) and value.startswith(CONTAINER_PREFIX):
            ref = value.removeprefix(CONTAINER_PREFIX)
            spec["namespaces"][kind] = CONTAINER_PREFIX + bound[ref].runtime_id
    network = spec.get("network") or {}
    mode = network.get("mode")
    if isinstance(mode, str) and mode.startswith(CONTAINER_PREFIX):
        network["mode"] = CONTAINER_PREFIX + bound[mode.removeprefix(CONTAINER_PREFIX)].runtime_id
    links = []
    for link in network.get("links") or []:
        ref, _, alias = link.partition(":")
        target = bound[ref]
        links.append(f"{target.runtime_id}:{alias or target.name}")
    if links:
        network["links"] = links


def _foreign_rows(spec: dict, *, team_id, host_id) -> list[str]:
    """Volumes and networks named by the spec whose row belongs to another team."""
    from networks.models import Network
    from volumes.models import Volume

    wanted = [n for n in network_names(spec) if n != DEFAULT_NETWORK]
    return [
        f"volume {name!r} belongs to another team"
        for name in _others(Volume, volume_names(spec), team_id=team_id, host_id=host_id)
    ] + [
        f"network {name!r} belongs to another team"
        for name in _others(Network, wanted, team_id=team_id, host_id=host_id)
    ]


def _others(model, names, *, team_id, host_id) -> list[str]:
    """Which of `names` are rows of `model` of another team on the host (no query for none)."""
    if not names:
        return []
    rows = model.objects.filter(host_id=host_id, name__in=names).exclude(team_id=team_id)
    return list(rows.values_list("name", flat=True))


def unclaimed_volumes(spec: dict, *, host) -> list[str]:
    """The named volumes the spec mounts that have no row on `host` yet."""
    from volumes.models import Volume

    names = sorted(set(volume_names(spec)))
    if not names:
        return []  # most specs mount none: no query to build
    known = set(Volume.objects.filter(host=host, name__in=names).values_list("name", flat=True))
    return [n for n in names if n not in known]


def claim_new_volumes(spec: dict, *, team, host) -> list[str]:
    """Create rows for the named volumes the spec mounts that have none yet (Docker makes them
    on first use); they belong to the container's team, so no other team can mount them."""
    from volumes.models import Volume

    created = unclaimed_volumes(spec, host=host)
    Volume.objects.bulk_create([Volume(team=team, host=host, name=n) for n in created])
    return created


def _owned(model, names: set, *, team_id, host_id) -> set:
    """Which of `names` are rows of `model` of the team on the host. No query is built for
    none (building one costs more than running it, and the agent checks every create)."""
    if not names:
        return set()
    rows = model.objects.filter(host_id=host_id, team_id=team_id, name__in=names)
    return set(rows.values_list("name", flat=True))


def verify(spec: dict, *, team_id, host_id) -> list[str]:
    """The agent's check: container references are runtime ids of live containers of the same
    team on this host, and every named volume and network is this team's (or the default)."""
    from networks.models import Network
    from volumes.models import Volume

    problems = []
    for where, ref in container_refs(spec):
        if not FULL_ID_RE.match(ref):
            problems.append(f"{where}: {ref!r} is not bound to a container id")
            continue
        ok = _live_containers(host_id).filter(team_id=team_id, runtime_id=ref).exists()
        if not ok:
            problems.append(f"{where}: container {ref[:12]} is not a live container of this team")
    names = set(volume_names(spec))
    owned = _owned(Volume, names, team_id=team_id, host_id=host_id)
    problems += [f"volume {n!r} is not a volume of this team" for n in sorted(names - owned)]
    wanted = set(network_names(spec)) - {DEFAULT_NETWORK}
    mine = _owned(Network, wanted, team_id=team_id, host_id=host_id)
    problems += [f"network {n!r} is not a network of this team" for n in sorted(wanted - mine)]
    return problems
