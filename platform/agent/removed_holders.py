"""Runtime containers of rows the web already removed, deleted before a resource is freed.

The web answers the remove of a container that runs nothing as soon as its row is marked
removed (issue 19); the host deletes the runtime container after the answer
(`agent.remove_container`). A network, volume or image removal that reaches the host first
would still find that container using it: `docker-compose down` removes the containers, then
their network and volumes, at once. Such holders are deleted here first, whichever message
comes first, as a create of the same name does (containers_ops._free_name).
"""

import contextlib

from agent import lookup
from containers.models import Container
from runtime.errors import NotFound


def _row_of(state: dict, host) -> int | None:
    labels = state.get("labels") or (state.get("spec") or {}).get("labels") or {}
    value = labels.get(lookup.LABEL) or ""
    host_name, _, pk = value.partition("/")
    return int(pk) if host_name == host.name and pk.isdigit() else None


def without_removed(rt, states: list[dict], host) -> list[dict]:
    """`states` (from rt.list()) without the containers of `host`'s removed rows, which are
    deleted from the runtime now."""
    rows = {state["id"]: _row_of(state, host) for state in states}
    removed = set(
        Container.objects.filter(
            pk__in=[pk for pk in rows.values() if pk is not None],
            host_id=host.pk,
            desired_state=Container.Desired.REMOVED,
        ).values_list("pk", flat=True)
    )
    if not removed:
        return list(states)
    kept = []
    for state in states:
        if rows[state["id"]] in removed:
            with contextlib.suppress(NotFound):  # its agent.remove_container got there first
                rt.delete(state["id"], force=True)
        else:
            kept.append(state)
    return kept
