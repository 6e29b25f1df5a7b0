"""Runtime containers labelled for this host that have no row: adopt them or remove them.

Such a container comes from a create cut off between the host and the database (the row lost
with a rolled-back or restored database, or deleted under a running create). Never left
running unseen:
- adopted when its create operation is known (the operation names the team and the user):
  the row is written again from the runtime's spec, same id, and the host's state recorded;
- otherwise removed once it is older than one reconcile interval (so within two passes);
- reported either way, in the agent's log and the audit log.
Left alone: a container whose row now lives on another host (a live migration's source
copy), and one for which this host has an operation in flight or finished less than one
interval ago (a migration's import here, before its row moves). An agent with its own
PostgreSQL role sees only its own host's rows (agent/dbroles.py): there a source copy counts
as an orphan and goes too, which is what the move does itself once the row has moved.
"""

import logging
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.utils import timezone

from agent import lookup, observe
from audit.services import record_event
from containers.models import Container
from hosts.models import Host
from operations.models import Operation
from runtime.errors import BerthError, NotFound

log = logging.getLogger(__name__)
GRACE = timedelta(seconds=settings.BERTH_RECONCILE_SECONDS)
Desired = Container.Desired


def handle(host_name: str, rt, present: dict, wanted: set) -> dict:
    """Adopt or remove this host's labelled containers that no row claims; returns counts."""
    prefix = f"{host_name}/"
    counts = {"orphans": 0, "adopted": 0, "orphans_removed": 0}
    for key, state in present.items():
        if not key.startswith(prefix) or key in wanted:
            continue
        counts["orphans"] += 1
        pk = key[len(prefix) :]
        if pk.isdigit() and Container.objects.filter(pk=int(pk)).exists():
            continue  # its row is on another host now: that move decides
        if pk.isdigit() and _work_under_way(host_name, pk):
            continue  # e.g. a live migration's import: its row moves here when it ends
        op = _create_operation(host_name, pk) if pk.isdigit() else None
        if op is not None and _adopt(host_name, int(pk), op, state):
            counts["adopted"] += 1
        elif _age(state) >= GRACE:
            _remove(host_name, rt, key, state)
            counts["orphans_removed"] += 1
    return counts


def _work_under_way(host_name: str, pk: str) -> bool:
    """An operation of this host for `pk` is in flight, or ended less than GRACE ago."""
    ops = Operation.objects.filter(host__name=host_name, target_id=pk)
    recent = timezone.now() - GRACE
    return ops.filter(
        Q(state__in=(Operation.State.PENDING, Operation.State.RUNNING)) | Q(finished_at__gte=recent)
    ).exists()


def _create_operation(host_name: str, pk: str):
    return (
        Operation.objects.filter(
            host__name=host_name,
            target_type="container",
            target_id=pk,
            kind="container.create",
            team__isnull=False,
        )
        .order_by("-id")
        .first()
    )


def _age(state: dict) -> timedelta:
    created = str(state.get("created") or "")[:19]
    try:
        made = datetime.fromisoformat(created).replace(tzinfo=UTC)
    except ValueError:
        return GRACE  # no readable time: old enough
    return datetime.now(UTC) - made


def _adopt(host_name: str, pk: int, op, state: dict) -> bool:
    """Write the row again from the runtime's spec; False if that cannot be done."""
    spec = dict(state.get("spec") or {})
    labels = {k: v for k, v in (spec.get("labels") or {}).items() if k != lookup.LABEL}
    spec["labels"] = labels
    running = state.get("status") in ("running", "paused", "restarting")
    try:
        with transaction.atomic():
            container = Container.objects.create(
                id=pk,
                team_id=op.team_id,
                host=Host.objects.get(name=host_name),
                name=state.get("name") or spec.get("name") or f"adopted-{pk}",
                image=spec.get("image") or "",
                spec=spec,
                labels=labels,
                desired_state=Desired.RUNNING if running else Desired.STOPPED,
                created_by_id=op.created_by_id,
            )
    except (DatabaseError, Host.DoesNotExist):
        return False  # its name is taken again, the host is gone, or refused: removal decides
    observe.record(container, state)
    reason = f"runtime container without a row; its create operation {op.pk} is known"
    log.warning("adopted container %s (%s) on host %s: %s", container.name, pk, host_name, reason)
    _audit("container.adopt", pk, container.name, host_name, state, reason, operation_id=op.pk)
    return True


def _remove(host_name: str, rt, key: str, state: dict) -> None:
    reason = (
        f"runtime container labelled {key} with no row and no known create operation "
        "(a create cut off between the host and the database): removed"
    )
    try:
        rt.delete(state["id"], force=True)
    except NotFound:
        pass
    except BerthError as err:
        log.error("could not remove orphan container %s: %s", state.get("name"), err)
        _audit("container.orphan_remove", "", state.get("name"), host_name, state, str(err), True)
        return
    log.warning("host %s: %s", host_name, reason)
    _audit("container.orphan_remove", "", state.get("name"), host_name, state, reason)


def _audit(action, pk, name, host_name, state, reason, failed=False, operation_id=None) -> None:
    try:
        record_event(
            action=action,
            outcome="failed" if failed else "allowed",
            reason=reason,
            object_type="container",
            object_id=pk or state.get("id", ""),
            object_repr=name or "",
            summary={
                "host": host_name,
                "runtime_id": state.get("id"),
                "status": state.get("status"),
            },
            operation_id=operation_id,
        )
    except Exception:
        log.exception("could not record %s in the audit log", action)
