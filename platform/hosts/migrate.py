"""Live migration of one running container to another host (CRIU stop-and-copy).

Steps, each an audited Operation like a drain's (hosts/drain.py, whose helpers it uses):
checkpoint on the source (the container stops; its checkpoint stays there), the archive
through the control plane (transfers/, kind "checkpoint"), named volumes copied as a drain
copies them, restore on the target (same address on a network of the same name when free,
published ports on the target's address), removal of the source's stopped copy, then the
row's host changes in one transaction with the audit event (the row is kept: same id, new
host and runtime id). Any failure before the restore succeeded resumes the container on the
source from its checkpoint, where it was.
"""

import secrets

from django.db import transaction
from django.utils import timezone

from containers import references
from containers.models import Container
from hosts import placement, steps
from hosts.models import Host
from hosts.steps import StepFailed
from operations import dispatch
from operations.models import Operation
from rbac import gate
from transfers.models import Transfer
from transfers.views import storage


def check_target(container: Container, target: Host) -> None:
    """StepFailed unless `target` can take the container (up, not cordoned, another host)."""
    if target.pk == container.host_id:
        raise StepFailed(f"container {container.name} is on host {target.name} already")
    refusal = placement.refusal(target)  # removed, not joined, cordoned or down
    if refusal:
        raise StepFailed(refusal)
    if container.observed_state != Container.Observed.RUNNING:
        raise StepFailed(f"container {container.name} is {container.observed_state}, not running")
    refs = references.container_refs(container.spec)
    if refs:
        raise StepFailed("it joins or links other containers on its host; it cannot move alone")


def migrate(container: Container, target: Host, *, acting_user, summary=None) -> Container:
    """Move running `container` to `target`; the row keeps its id. StepFailed says why not."""
    summary = dict(summary or {}) | {"container": container.name, "to": target.name}
    # The gate on both hosts: the source row as it is, and the row as it would be on target.
    steps.audited(acting_user, "container.migrate", container, summary)
    moved = Container(team=container.team, host=target, name=container.name, spec=container.spec)
    decision = steps.audited(acting_user, "container.migrate", moved, summary)
    check_target(container, target)
    source = container.host
    name = f"migrate-{secrets.token_hex(4)}"
    transfer = Transfer.objects.create(
        source=source,
        target=target,
        team=container.team,
        kind="checkpoint",
        name=container.name,
        expires_at=timezone.now() + steps.TRANSFER_LIFETIME,
    )
    params = {"transfer": str(transfer.pk), "checkpoint": name}
    try:
        _on_source(container, "container.checkpoint", acting_user, params, summary)
        for volume in sorted(set(references.volume_names(container.spec))):
            steps.move_volume(container, volume, target, acting_user)
        transfer.refresh_from_db()
        op = steps.new_operation(
            "checkpoint.import",
            target,
            container.team,
            "container",
            container.pk,
            acting_user,
            params | {"sha256": transfer.sha256},
        )
        result = _restored(op, container, target)
    except StepFailed:
        _on_source(container, "container.resume", acting_user, params, summary, check=False)
        raise
    finally:
        storage(transfer.pk).unlink(missing_ok=True)
        Transfer.objects.filter(pk=transfer.pk).update(state=Transfer.State.DONE)
    # Removed before the row moves: the source's agent finds the row only while it is on its host.
    _on_source(container, "container.remove", acting_user, {"force": True}, summary, check=False)
    state = result.get("state") or {}
    with transaction.atomic():
        Container.objects.filter(pk=container.pk).update(
            host=target,
            runtime_id=result.get("runtime_id", ""),
            observed_state=Container.Observed.RUNNING,
            pid=state.get("pid"),
            network_info=state.get("network") or {},
            error="",
            observed_at=timezone.now(),
        )
        # The gate's decision, recorded with the move it allowed (one event, in the same
        # transaction as the row's new host).
        gate.record(
            decision,
            summary=summary | {"from": source.name, "step": "moved"},
            reason=f"{decision.reason}; moved from host {source.name} to host {target.name}",
        )
    container.refresh_from_db()
    return container


def _restored(op, container, target) -> dict:
    """Run the restore on the target; if it does not finish in time, call it off first, so the
    container can never end up running on both hosts."""
    try:
        return steps.run(op, f"restore of {container.name} on {target.name}").result
    except StepFailed:
        called_off = Operation.objects.filter(pk=op.pk, state=Operation.State.PENDING).update(
            state=Operation.State.FAILED,
            error="the migration was called off",
            finished_at=timezone.now(),
        )
        if called_off:
            raise
        # The target took it after all: its outcome decides.
        op = dispatch.wait_for(op, steps.STEP_SECONDS)
        if op.state != Operation.State.SUCCEEDED:
            raise
        return op.result


def _on_source(container, kind, acting_user, params, summary, *, check=True):
    with transaction.atomic():
        op = steps.new_operation(
            kind, container.host, container.team, "container", container.pk, acting_user, params
        )
    return steps.run(op, f"{kind} of {container.name} on {container.host.name}", check=check)
