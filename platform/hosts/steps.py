"""Steps that move work between hosts, shared by a drain (drain.py) and a live migration
(migrate.py): each step is an Operation on one host, decided by the gate, audited, sent signed,
and waited for; a failed step raises StepFailed with what failed and why."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit import context
from hosts.models import Host
from operations import dispatch
from operations.models import Operation
from rbac import gate
from transfers.models import Transfer
from transfers.views import storage
from volumes.models import Volume

# How long one step may take before the move is called off (tests use a short one).
STEP_SECONDS = settings.BERTH_HOST_STEP_SECONDS
TRANSFER_LIFETIME = timedelta(hours=1)


class StepFailed(Exception):
    """One step of one container's move failed; the message says which and why."""


def new_operation(kind, host, team, target_type, target_id, acting_user, params):
    """A pending Operation of this request (sent by run())."""
    return dispatch.new_operation(
        kind=kind,
        target_type=target_type,
        target_id=target_id,
        host=host,
        team=team,
        params=params,
        user=acting_user,
        request_id=context.current().request_id,
    )


def send(op: Operation) -> None:
    """Queue `op` on its host's lane without waiting for it."""
    queue = dispatch.operation_queue(op.host.queue, op.kind)  # long work: the long lane
    dispatch.send_signed(
        dispatch.EXECUTE_OPERATION,
        op.host,
        [op.pk],
        task_id=op.task_id,
        queue=queue,
        # The row is the outcome (wait_for reads it): no result backend subscribed per send.
        ignore_result=True,
    )


def run(op: Operation, what: str, *, check=True) -> Operation:
    """Send one operation, wait for it, raise StepFailed unless it succeeded."""
    send(op)
    op = dispatch.wait_for(op, STEP_SECONDS)
    if check and op.state != Operation.State.SUCCEEDED:
        raise StepFailed(f"{what}: {op.error or op.state}")
    return op


def audited(acting_user, action, obj, summary):
    """The gate's decision for one step; a refusal is audited and raised as StepFailed."""
    decision = gate.decide(acting_user, action, obj)
    if not decision.allowed:
        gate.record(decision, summary=summary)
        raise StepFailed(decision.reason)
    return decision


def move_volume(container, name, target: Host, acting_user) -> None:
    """Copy a named volume of `container` to `target`: export there, import here, checked."""
    source_vol = Volume.objects.filter(host=container.host, name=name).first()
    if source_vol is None or source_vol.team_id != container.team_id:
        raise StepFailed(f"volume {name!r} is not a volume of team {container.team.name} here")
    taken = Volume.objects.filter(host=target, name=name).first()
    if taken is not None and taken.team_id != container.team_id:
        raise StepFailed(f"volume {name!r} is taken by another team on host {target.name}")
    summary = {"drain": container.host.name, "volume": name, "to": target.name}
    audited(acting_user, "volume.create", Volume(team=container.team, host=target), summary)
    with transaction.atomic():
        target_vol = taken or Volume.objects.create(team=container.team, host=target, name=name)
        transfer = Transfer.objects.create(
            source=container.host,
            target=target,
            team=container.team,
            name=name,
            expires_at=timezone.now() + TRANSFER_LIFETIME,
        )
        export = new_operation(
            "volume.export",
            container.host,
            container.team,
            "volume",
            source_vol.pk,
            acting_user,
            {"transfer": str(transfer.pk)},
        )
        gate.record(
            gate.decide(acting_user, "volume.create", target_vol),
            summary=summary | {"transfer": str(transfer.pk)},
            operation=export,
        )
    try:
        run(export, f"export of volume {name} from {container.host.name}")
        transfer.refresh_from_db()
        imported = new_operation(
            "volume.import",
            target,
            container.team,
            "volume",
            target_vol.pk,
            acting_user,
            {"transfer": str(transfer.pk), "sha256": transfer.sha256},
        )
        run(imported, f"import of volume {name} on {target.name}")
    finally:
        # The archive served its purpose (or failed): it does not stay on the web's disk.
        storage(transfer.pk).unlink(missing_ok=True)
        Transfer.objects.filter(pk=transfer.pk).update(state=Transfer.State.DONE)
