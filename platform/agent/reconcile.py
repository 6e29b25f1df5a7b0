"""Level-triggered repair: compare what the database wants with what this host runs.

Choices (docs/agent.md):
- A container the database believes exists that the host does not know is marked `ghost`,
  then repaired by its desired state: desired running or paused -> re-created from its stored
  spec and started, through a recorded `container.start` Operation (its writable layer is lost,
  as after `docker rm` + `docker run`); desired created or stopped -> observed `stopped` (a later
  start re-creates it). Containers with an operation in flight are left to that operation.
- Exits, OOM kills and restarts done by the runtime reach the row on every pass.
- A labelled runtime container whose row wants it removed is deleted; one labelled for this
  host without any row is adopted (its create operation is known) or removed after one
  interval (agent/orphans.py).
- Containers whose monitor (shim) is gone are reaped and their restart policy applied on every
  pass; the start-up pass after a boot applies Docker's boot rules (agent/boot.py).
- Image rows follow the host's image store (agent/image_sync.py).
"""

import contextlib
import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from agent import (
    boot,
    claims,
    containers_ops,
    executor,
    image_sync,
    lookup,
    observe,
    orphans,
    volume_sizes,
)
from agent.runtime_handle import get_runtime
from containers.models import Container
from hosts.models import Host
from operations.models import Operation
from runtime.errors import NotFound

log = logging.getLogger(__name__)
Observed, Desired, OpState = Container.Observed, Container.Desired, Operation.State
# A pending operation this old lost its message (never queued, or Redis restarted empty): run
# it from the row. Two reconcile intervals: a message still queued behind busy workers is
# claimed once either way (agent/claims.py).
LOST_MESSAGE_AFTER = timedelta(seconds=2 * settings.BERTH_RECONCILE_SECONDS)
# Operations that are live sessions run by their own task (agent/streams.py), never re-run.
SESSION_KINDS = frozenset({"container.terminal"})
# A removed container's row that needs nothing more unless its container is still listed.
SETTLED_REMOVED = Q(desired_state=Desired.REMOVED, observed_state=Observed.REMOVED)
# Columns a pass reads only for a few rows (loaded then, one query each).
_UNREAD = ("spec", "labels", "network_info")


def recover_operations(host_name: str, *, agent_started=None, rt=None) -> list[int]:
    """Run operations of this host that no live task will run; returns their ids.

    With `agent_started` (the start-up pass): operations a previous agent claimed before this
    one started were cut off by its death, and are run again (every step is idempotent); ones
    claimed since belong to a live task of this agent and are left alone. Pending operations
    are offered too: the claim lets exactly one of this pass and their own message run each.
    Later passes only take pending operations whose message got lost.
    """
    ops = Operation.objects.filter(host__name=host_name)
    if agent_started is not None:
        ops = ops.filter(
            Q(state=OpState.PENDING) | Q(state=OpState.RUNNING, started_at__lt=agent_started)
        )
    else:
        ops = ops.filter(state=OpState.PENDING, created_at__lt=timezone.now() - LOST_MESSAGE_AFTER)
    done = []
    for op_id, state, kind in ops.order_by("created_at", "id").values_list("id", "state", "kind"):
        if kind in SESSION_KINDS:
            _end_session(op_id, state, host_name)
            continue
        log.info("recovering %s operation %s on host %s", state, op_id, host_name)
        executor.execute(op_id, host_name=host_name, recovering=state == OpState.RUNNING, rt=rt)
        done.append(op_id)
    return done


def _end_session(op_id, state, host_name) -> None:
    """A live session (web terminal) cannot be re-run: its browser end is gone with the agent.

    Pending ones belong to their own task (agent.relay_terminal); running ones of a dead agent
    are closed as failed.
    """
    if state == OpState.RUNNING:
        op = claims.claim(op_id, host_name=host_name, recovering=True)
        if op is not None:
            claims.finish(op, error="the session ended: the host agent restarted")


def reconcile_host(host_name: str, *, agent_started=None, rt=None) -> dict:
    """One pass over this host's containers; returns counts for the log and the tests.

    `agent_started` (a datetime) marks the start-up pass of an agent that started then.
    """
    rt = rt or get_runtime()
    # Runtime first: lost monitors reaped and restart policies applied (at start-up also
    # half-made containers, networks and, after a boot, every container's boot rule).
    recovery = boot.recover(host_name, rt, startup=agent_started is not None)
    recovered = recover_operations(host_name, agent_started=agent_started, rt=rt)
    busy = set(
        Operation.objects.filter(
            host__name=host_name,
            target_type="container",
            state__in=(OpState.PENDING, OpState.RUNNING),
        )
        .exclude(kind__in=SESSION_KINDS)  # a terminal session changes nothing the reconciler sees
        .values_list("target_id", flat=True)
    )
    present = lookup.index(rt)
    counts = {
        "recovered": len(recovered),
        "updated": 0,
        "ghosts": 0,
        "repaired": 0,
        "orphans": 0,
        "removed": 0,
        "reaped": recovery["reaped"],
        "restarted": recovery["restarted"],
    }
    wanted = set()
    for container in _rows(host_name, present, wanted):
        key = lookup.label_value(container)
        wanted.add(key)
        if str(container.id) in busy:
            continue
        state = present.get(key)
        if container.desired_state == Desired.REMOVED:
            if state is not None:
                if _in_flight(container):
                    continue  # a remove asked after `busy` was read: it is the remove's to do
                with contextlib.suppress(NotFound):  # gone meanwhile: what was wanted
                    rt.delete(state["id"], force=True)
                counts["removed"] += 1
            if container.observed_state != Observed.REMOVED:
                observe.record_missing(container, Observed.REMOVED)
            continue
        if state is not None:
            # An operation asked since `busy` was read records its own outcome, newer than
            # this pass's list: never overwrite it with what the list said.
            if _changed(container, state) and not _in_flight(container):
                observe.record(container, state)
                counts["updated"] += 1
            continue
        if container.observed_state == Observed.PENDING or containers_ops.never_made(container):
            continue  # never created: its create operation failed or has not run
        if not _still_missing(container, rt):
            continue  # an operation made, replaced or removed it after this pass looked
        if (container.spec or {}).get("auto_remove"):
            observe.record_auto_removed(container)  # run --rm: the host removed it on exit
            counts["removed"] += 1
            continue
        counts["ghosts"] += 1
        _repair_ghost(container, host_name, rt)
        counts["repaired"] += container.desired_state in (Desired.RUNNING, Desired.PAUSED)
    counts.update(image_sync.sync_images(host_name, rt))
    volume_sizes.measure(host_name, rt)  # the team volume_bytes quota's use (not a change)
    counts.update(orphans.handle(host_name, rt, present, wanted))
    if any(counts.values()):
        log.info("reconciled host %s: %s", host_name, counts)
    return counts


def _rows(host_name: str, present: dict, wanted: set):
    """The rows of this host a pass looks at (lazily: `wanted` fills as they are read).

    A removed container's row stays until the retention purges it (a week by default), so
    those rows grow with every remove: reading them all each pass made the pass, and the
    agent's main process, grow with every container ever removed (bench/churn_soak.py). A
    settled one (desired and observed removed) needs nothing unless the runtime still lists
    its container, which the pass then deletes: only those are read.
    """
    # One Host for every row, and the JSON columns left unread until a rare path asks (a
    # ghost's spec): decoding the spec, labels and network of each row, and the host's info
    # once per row through select_related, was most of a pass's CPU at 1,000 containers,
    # spent in the agent's main process beside Celery's consumer (issue 19).
    host = Host.objects.filter(name=host_name).first()
    rows = Container.objects.filter(host__name=host_name).defer(*_UNREAD)
    for row in rows.exclude(SETTLED_REMOVED):
        row.host = host
        yield row
    prefix = f"{host_name}/"
    listed = sorted(
        int(key[len(prefix) :])
        for key in present
        if key.startswith(prefix) and key not in wanted and key[len(prefix) :].isdigit()
    )
    for at in range(0, len(listed), 500):  # SQLite's limit on bound parameters
        for row in rows.filter(SETTLED_REMOVED, pk__in=listed[at : at + 500]):
            row.host = host
            yield row


def _changed(container, state) -> bool:
    status = observe.STATUS_MAP.get(state.get("status"), Observed.ERROR)
    exit_code = state.get("exit_code") if status == Observed.STOPPED else None
    pid = state.get("pid") if status in (Observed.RUNNING, Observed.PAUSED) else None
    return (container.observed_state, container.exit_code, container.pid, container.runtime_id) != (
        status,
        exit_code,
        pid,
        state.get("id"),
    )


def _still_missing(container, rt) -> bool:
    """Look again before calling a container a ghost: the list and rows above may be stale.

    Between this pass's `busy` query, its runtime list and its row query, another worker
    process may have run an operation on the container (a create that finished, a remove that
    started); re-reading the row, its operations and the host closes that window.
    """
    container.refresh_from_db()
    if container.observed_state == Observed.PENDING or container.desired_state == Desired.REMOVED:
        return False
    if _in_flight(container):
        return False
    return lookup.find(rt, container) is None


def _in_flight(container) -> bool:
    """Whether an operation on the container is pending or running now (not when the pass
    began: one asked for since is not in its `busy` set)."""
    return (
        Operation.objects.filter(
            target_type="container",
            target_id=str(container.id),
            state__in=(OpState.PENDING, OpState.RUNNING),
        )
        .exclude(kind__in=SESSION_KINDS)
        .exists()
    )


def _repair_ghost(container, host_name, rt) -> None:
    log.warning("container %s (%s) is a ghost on host %s", container.name, container.id, host_name)
    observe.record_missing(container, Observed.GHOST)
    if container.desired_state not in (Desired.RUNNING, Desired.PAUSED):
        observe.record_missing(container, Observed.STOPPED)
        return
    op = Operation.objects.create(
        kind="container.start",
        target_type="container",
        target_id=str(container.id),
        host=container.host,
        team=container.team,
        params={"reason": "reconcile: ghost re-created from its spec"},
    )
    executor.execute(op.id, host_name=host_name, rt=rt)


def ghosts_q() -> Q:
    """Containers the dashboard counts as ghosts."""
    return Q(observed_state=Observed.GHOST)
