"""Find the runtime container that belongs to a platform Container, whatever happened before.

A retried task must find the container an earlier attempt created (maybe killed before it could
save the runtime id), so every container the agent creates carries the label below with the
platform's primary key; the runtime id saved in the row is only the fast path.
"""

from runtime.errors import Conflict, NotFound

LABEL = "io.berth.container"


def label_value(container) -> str:
    """The label value that ties a runtime container to its row: '<host name>/<primary key>'."""
    return f"{container.host.name}/{container.pk}"


def find(rt, container) -> dict | None:
    """The runtime state of `container`, or None if this host does not know it.

    Tried in order: the runtime id saved in the row, then the name the agent creates it under
    (an attempt killed before it saved the id). Both must carry our label, so a look-alike
    (another installation's container, a stale name, another container whose id the name
    starts) is never taken for ours.
    """
    wanted = label_value(container)
    for ref in (container.runtime_id, container.name):
        if not ref:
            continue
        try:
            state = rt.state(ref)
        except (NotFound, Conflict):
            # Conflict: a name made of hex digits that no container holds but that starts
            # the ids of several (the runtime tries names before id prefixes): not ours.
            continue
        if _labels(state).get(LABEL) == wanted:
            return state
    return None


def index(rt) -> dict[str, dict]:
    """Every runtime container that carries our label, by label value (one list() call)."""
    found = {}
    for state in rt.list():
        value = _labels(state).get(LABEL)
        if value:
            found[value] = state
    return found


def _labels(state: dict) -> dict:
    spec = state.get("spec") or {}
    return state.get("labels") or spec.get("labels") or {}
