"""Containers that join others by runtime id, put back together after a restore.

A stored spec names the containers whose namespaces it joins (`network.mode`,
`namespaces.<kind>` as `container:<id>`) or that it links to (`network.links` as
`<id>:<alias>`) by their runtime ids (containers.references.bind). A restore makes every
container again with a new runtime id, so the host creates the targets first, then rewrites
each joiner's references from the old ids to the new ones before creating it.
"""

import copy

from containers.references import CONTAINER_PREFIX, container_refs


def referenced_ids(spec: dict) -> list[str]:
    """The runtime ids a spec joins or links to, in spec order, once each."""
    return list(dict.fromkeys(ref for _, ref in container_refs(spec)))


def order(containers: list, old_ids: dict[str, str]) -> list:
    """`containers` with each one after the containers it references (by old runtime id);
    otherwise the given order is kept, and a cycle keeps its remaining order."""
    pk_of = {old: str(c.pk) for c in containers if (old := old_ids.get(str(c.pk)))}
    after = {
        str(c.pk): {pk_of[r] for r in referenced_ids(c.spec or {}) if r in pk_of} - {str(c.pk)}
        for c in containers
    }
    pending, placed, out = list(containers), set(), []
    while pending:
        ready = [c for c in pending if after[str(c.pk)] <= placed] or pending[:1]
        for c in ready:
            pending.remove(c)
            placed.add(str(c.pk))
            out.append(c)
    return out


def rebind(spec: dict, new_ids: dict[str, str]) -> tuple[dict, list[str]]:
    """A copy of `spec` with every old runtime id replaced by its new one; the old ids that
    have no new one (their container did not come back) are returned, the spec is unchanged."""
    refs = referenced_ids(spec)
    missing = [ref for ref in refs if ref not in new_ids]
    if missing or not refs:
        return spec, missing
    out = copy.deepcopy(spec)
    for kind, value in list((out.get("namespaces") or {}).items()):
        if isinstance(value, str) and value.startswith(CONTAINER_PREFIX):
            out["namespaces"][kind] = CONTAINER_PREFIX + new_ids[value[len(CONTAINER_PREFIX) :]]
    network = out.get("network") or {}
    mode = network.get("mode")
    if isinstance(mode, str) and mode.startswith(CONTAINER_PREFIX):
        network["mode"] = CONTAINER_PREFIX + new_ids[mode[len(CONTAINER_PREFIX) :]]
    if network.get("links"):
        network["links"] = [
            new_ids[ref] + sep + alias
            for ref, sep, alias in (link.partition(":") for link in network["links"])
        ]
    return out, []
