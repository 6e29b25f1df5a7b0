"""Container operations: each maps one Operation kind onto runtime verbs, idempotently.

Every handler first asks the runtime what exists (by the container's label), then does only
what is missing, so running a handler twice (a redelivered task, a recovered operation)
converges on the same single container.
"""

import base64
import contextlib
import dataclasses
import itertools
import logging

from django.utils import timezone

from agent import lookup, observe, waiting
from agent.policy_gate import checked_spec
from containers import references
from containers.models import Container
from containers.sorting import natural_sort_key
from runtime.errors import BerthError, Conflict, InvalidSpec, NotFound
from volumes.models import Volume

log = logging.getLogger(__name__)
Observed = Container.Observed
MAX_LOG_LINES = 10_000
MAX_OUTPUT_BYTES = 1024 * 1024


def runtime_spec(container):
    """The spec the runtime gets: the checked stored spec, named and labelled for lookup."""
    spec = checked_spec(container)
    labels = dict(spec.labels)
    labels[lookup.LABEL] = lookup.label_value(container)
    return dataclasses.replace(spec, name=container.name, labels=labels)


def _make(rt, container, *, start: bool) -> dict:
    """Create (and with `start`, run) the container from its checked spec."""
    spec = runtime_spec(container)
    make = rt.run if start else rt.create
    try:
        # The runtime itself frees a name held by a create that was killed half-way.
        state = make(spec)
    except Conflict as err:
        # A removed row's container may still hold the name here (the web answers a remove
        # before the host deletes it): deleted now, whichever message comes first.
        if not _free_name(rt, container, str(err)):
            raise
        state = make(spec)
    # Volumes made on first use exist now (the runtime made their directories).
    names = references.volume_names(container.spec)
    if names:
        Volume.objects.filter(
            host_id=container.host_id, team_id=container.team_id, name__in=names, state="pending"
        ).update(state="ready")
    return state


def _free_name(rt, container, conflict: str) -> bool:
    """Delete the runtime container holding `container`'s name if it is the container of a
    removed row of this host; True when the name is free now (a create may try again)."""
    try:
        holder = rt.state(container.name)
    except Conflict:  # no container holds the name; it starts the ids of several (lookup.py)
        return False
    except NotFound:
        # Deleted since the conflict (its agent.remove_container ran): try again if it was
        # the name that conflicted, not something else (a port, an address).
        return f'"/{container.name}" is already in use' in conflict
    spec = holder.get("spec") or {}
    value = (holder.get("labels") or spec.get("labels") or {}).get(lookup.LABEL) or ""
    host_name, _, pk = value.partition("/")
    if host_name != container.host.name or not pk.isdigit() or int(pk) == container.pk:
        return False
    removed = Container.objects.filter(
        pk=int(pk), host_id=container.host_id, desired_state=Container.Desired.REMOVED
    ).exists()
    if not removed:
        return False
    with contextlib.suppress(NotFound):
        rt.delete(holder["id"], force=True)
    return True


def _ensure_created(rt, container) -> dict:
    state = lookup.find(rt, container)
    if state is None:
        state = _make(rt, container, start=False)
    return state


def _never_started(state) -> bool:
    return state.get("status") == "created" and not state.get("started_at")


def _replace(rt, container, state, *, start: bool) -> dict:
    """Throw away a container that never ran and make it again from its spec.

    An agent killed inside the runtime's create can leave a half-made container (a record
    without its cgroup); it never ran, so nothing is lost by making it again.
    """
    rt.delete(state["id"], force=True)
    return _make(rt, container, start=start)


def _must_exist(rt, container) -> dict:
    state = lookup.find(rt, container)
    if state is None:
        observe.record_missing(container, Observed.GHOST)
        raise NotFound(f"container {container.name} does not exist on host {container.host.name}")
    return state


def _refresh(rt, container, state, *, fresh: bool = False) -> dict:
    """Record the container's state in its row; `fresh`: `state` is what the runtime's
    create, run or start just returned (its own state() at the end), so not asked again."""
    if not fresh:
        state = rt.state(state["id"])
    observe.record(container, state)
    return observe.snapshot(state)


def mark_failed(container, err) -> None:
    """A create that made nothing failed: the row says so with the reason (observed `error`,
    no runtime id), never `pending` for good; the reconciler leaves such a row alone."""
    observe._update(
        container,
        {
            "observed_state": Observed.ERROR,
            "runtime_id": "",
            "pid": None,
            "error": str(err)[:2000],
            "observed_at": timezone.now(),
        },
    )


def never_made(container) -> bool:
    """The row of a create that failed before the host made anything (see mark_failed)."""
    return container.observed_state == Observed.ERROR and not container.runtime_id


def create(rt, op, container):
    """Create the container (and start it when params.start is true)."""
    start_now = bool(op.params.get("start"))
    state = lookup.find(rt, container)
    if state is None:
        # With start: one step, the process execs as soon as it is set up. The spec is checked
        # here first (checked_spec, then the runtime's own checks): a refusal leaves nothing.
        try:
            state = _make(rt, container, start=start_now)
        except BerthError as err:
            if lookup.find(rt, container) is None:
                mark_failed(container, err)
            raise
        return _refresh(rt, container, state, fresh=True)
    if _never_started(state):
        # An earlier attempt of this operation made it and died: make it again, whole.
        state = _replace(rt, container, state, start=start_now)
    elif start_now and state.get("status") not in ("running", "paused"):
        rt.start(state["id"])
    return _refresh(rt, container, state)


def start(rt, op, container):
    """Start it; a container the host lost is created again from its spec first.

    A running one goes through rt.start too: a stop still sitting out its grace (parked, its
    container running until the shim's kill) ends first and a new run begins (the runtime's
    _finish_pending_stop), where reporting the running old run would leave the stop's kill to
    end it after this start was answered (seen in the faults e2e test). Otherwise rt.start
    leaves a running container alone.
    """
    state = lookup.find(rt, container)
    if state is None:
        return _refresh(rt, container, _make(rt, container, start=True), fresh=True)
    if state.get("status") != "paused":
        try:
            return _refresh(rt, container, rt.start(state["id"]), fresh=True)
        except BerthError:
            if not _never_started(state):
                raise
            state = _replace(rt, container, state, start=True)
    return _refresh(rt, container, state)


def stop(rt, op, container):
    """Stop with the stop signal, then SIGKILL after the timeout; nothing to do if it is gone."""
    state = lookup.find(rt, container)
    if state is None:
        observe.record_missing(container, Observed.GHOST)
        return {"status": "missing"}
    if state.get("status") in ("running", "paused"):
        # Signal and return the worker; the shim kills after the grace period and the
        # Waiter completes the operation when the container exits (agent/waiting.py).
        parked = waiting.signal_stop(rt, op, state)
        if parked is not None:
            return parked
        rt.stop(state["id"], timeout=op.params.get("timeout"))
    return _refresh(rt, container, state)


def restart(rt, op, container):
    """Stop (if running) and start again; creates it if the host lost it."""
    state = _ensure_created(rt, container)
    if state.get("status") == "created":
        rt.start(state["id"])
    else:
        if state.get("status") == "running":
            parked = waiting.signal_stop(rt, op, state, restart=True)  # as stop() above
            if parked is not None:
                return parked
        rt.restart(state["id"], timeout=op.params.get("timeout"))
    return _refresh(rt, container, state)


def kill(rt, op, container):
    """Send a signal (default KILL)."""
    state = _must_exist(rt, container)
    rt.kill(state["id"], op.params.get("signal") or "KILL")
    return _refresh(rt, container, state)


def pause(rt, op, container):
    """Freeze every process of the container."""
    state = _must_exist(rt, container)
    if state.get("status") != "paused":
        rt.pause(state["id"])
    return _refresh(rt, container, state)


def unpause(rt, op, container):
    """Thaw it."""
    state = _must_exist(rt, container)
    if state.get("status") == "paused":
        rt.unpause(state["id"])
    return _refresh(rt, container, state)


def rename(rt, op, container):
    """Rename the runtime's container (idempotent), then the row."""
    new_name = op.params.get("new") or op.params.get("name")
    if not new_name:
        raise InvalidSpec("rename needs a new name")
    state = lookup.find(rt, container)
    if state is not None:
        rt.rename(state["id"], new_name)
    if container.name != new_name:
        sort_name = natural_sort_key(new_name)
        Container.objects.filter(id=container.id).update(name=new_name, sort_name=sort_name)
    return {"name": new_name}


def remove(rt, op, container):
    """Delete it from the host (force kills a running one); gone already counts as done."""
    state = lookup.find(rt, container)
    if state is not None:
        # Another pass (the reconciler, a --rm exit) may delete it between find and here.
        with contextlib.suppress(NotFound):
            rt.delete(state["id"], force=bool(op.params.get("force")))
    observe.record_missing(container, Observed.REMOVED)
    return {"removed": True}


def delete_removed(rt, container_id: int, *, host_name: str) -> dict:
    """agent.remove_container: delete the runtime container of a row the web marked removed.

    Only a row of this host that is still wanted removed: anything else is left alone. A
    failure is logged; the reconciler deletes what a removed row left on the host."""
    container = (
        Container.objects.select_related("host")
        .filter(pk=container_id, host__name=host_name)
        .first()
    )
    if container is None or container.desired_state != Container.Desired.REMOVED:
        return {"removed": False}
    try:
        state = lookup.find(rt, container)
        if state is not None:
            with contextlib.suppress(NotFound):  # a create of its name or a pass deleted it
                rt.delete(state["id"], force=True)
    except BerthError as err:
        log.warning("could not delete removed container %s: %s", container_id, err)
        return {"removed": False, "error": str(err)}
    return {"removed": True}


def logs(rt, container, params):
    """The last lines of stdout/stderr: {"lines": [[stream, iso_ts, text], ...]} (never follows)."""
    state = _must_exist(rt, container)
    entries = rt.logs(
        state["id"],
        follow=False,
        tail=params.get("tail"),
        since=params.get("since"),
        timestamps=bool(params.get("timestamps")),
    )
    lines, size = [], 0
    for stream, ts, data in itertools.islice(entries, MAX_LOG_LINES):
        size += len(data)
        if size > MAX_OUTPUT_BYTES:
            break
        lines.append([stream, ts, data.decode("utf-8", "replace")])
    return {"lines": lines}


def stats(rt, container, params):
    """One sample of CPU, memory, pids and block IO counters."""
    return rt.stats(_must_exist(rt, container)["id"])


def top(rt, container, params):
    """The processes of the container: {"titles": [...], "processes": [[...], ...]}."""
    return rt.top(_must_exist(rt, container)["id"])


def exec_(rt, container, params):
    """Run a command inside (non-interactive): {"exit_code": int, "output": str}."""
    state = _must_exist(rt, container)
    argv = params.get("cmd") or params.get("argv") or params.get("command")
    if not argv or not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise InvalidSpec("exec needs a command: a non-empty list of strings")
    refuse_root_unless_allowed(rt, state["id"], params.get("user"), params)
    code, output = rt.exec(
        state["id"],
        argv,
        env=tuple(params.get("env") or ()),
        user=params.get("user"),
        workdir=params.get("workdir") or params.get("working_dir"),
    )
    output = output[-MAX_OUTPUT_BYTES:]
    try:
        return {"exit_code": code, "output": output.decode("utf-8")}
    except UnicodeDecodeError:
        return {
            "exit_code": code,
            "output": output.decode("utf-8", "replace"),
            "output_base64": base64.b64encode(output).decode(),
        }


def refuse_root_unless_allowed(rt, runtime_id: str, user, params: dict) -> None:
    """Defense in depth for "exec as root into another team's container": the web can only
    check the user's spelling; here the name is resolved in the container's own passwd file
    (and a missing user means the container's user, often root). The web's gate says in
    `root_allowed` whether the requester may be root there; absent means no."""
    if params.get("root_allowed") is not True and rt.exec_uid(runtime_id, user) == 0:
        raise InvalidSpec(
            "exec as root into another team's container requires permission container.exec_root"
        )


# Read-style calls: the web waits for their answer (agent.container_<name> tasks).
QUERIES = {"logs": logs, "stats": stats, "top": top, "exec": exec_}


def _as_operation(query):
    return lambda rt, op, container: query(rt, container, op.params)


HANDLERS = {
    "create": create,
    "run": lambda rt, op, c: start(rt, op, c),
    "start": start,
    "stop": stop,
    "restart": restart,
    "kill": kill,
    "pause": pause,
    "unpause": unpause,
    "rename": rename,
    "remove": remove,
    "delete": remove,
    **{name: _as_operation(query) for name, query in QUERIES.items()},
}

# Live migration's steps on the source (agent/migrate_ops.py).
from agent import migrate_ops  # noqa: E402 (it needs nothing of this module)

HANDLERS.update(migrate_ops.CONTAINER_HANDLERS)

# docker network connect/disconnect (agent/network_join_ops.py).
from agent import network_join_ops  # noqa: E402

HANDLERS.update(network_join_ops.CONTAINER_HANDLERS)
