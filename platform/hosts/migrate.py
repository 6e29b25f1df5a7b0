"""Live migration of one running container to another host (CRIU).

Pre-copy, for a container without named volumes: the target listens (checkpoint.receive),
the source sends memory ahead while the container runs, freezes it for the final dump and
sends the rest straight to the target over a connection both prove their host keys on
(agent/migrate_ops.py, runtime/container/precopy.py); the target restores and answers. If
the source's step fails, the target's outcome decides: restored there, or resumed here.

Post-copy (mode "postcopy", asked for): the same two steps, but the target runs the container
as soon as everything but its memory has arrived, and its pages follow over a second proven
connection (runtime/container/postcopy.py): the shortest downtime, at the cost of a window
(until the last page is in) where a broken link loses what the target did since the freeze.
Pre-copy stays the default: until the target answers, any failure leaves the container running
on the source as it was, and it works for user-namespaced containers too (post-copy needs
userfaultfd, which the kernel refuses inside a user namespace unless unprivileged).

Stop-and-copy, for a container with named volumes (they are copied while it is stopped).
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
import time

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

# The longest a pre-copy send may run (its connection gives up after 300 s of silence).
PRECOPY_SECONDS = 900
MODES = ("precopy", "postcopy")


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


def migrate(
    container: Container, target: Host, *, acting_user, summary=None, mode="precopy"
) -> Container:
    """Move running `container` to `target`; the row keeps its id. StepFailed says why not."""
    summary = dict(summary or {}) | {"container": container.name, "to": target.name}
    if mode != "precopy":
        summary["mode"] = mode
    # The gate on both hosts: the source row as it is, and the row as it would be on target.
    steps.audited(acting_user, "container.migrate", container, summary)
    moved = Container(team=container.team, host=target, name=container.name, spec=container.spec)
    decision = steps.audited(acting_user, "container.migrate", moved, summary)
    source = container.host
    try:
        check_target(container, target)
        if mode not in MODES:
            raise StepFailed(f"unknown migration mode {mode!r}: use {' or '.join(MODES)}")
        volumes = references.volume_names(container.spec)
        if volumes and mode == "postcopy":
            raise StepFailed("post-copy moves containers without named volumes; use precopy")
        if volumes:
            result = _stop_and_copy(container, target, acting_user, summary)
        else:
            result = _precopy(container, target, acting_user, summary, mode)
    except StepFailed as err:
        # Allowed, but it did not happen: the event says why (the container stays on source).
        gate.record(
            decision,
            summary=summary | {"from": source.name, "step": "failed", "error": str(err)[:500]},
            outcome=gate.FAILED,
            reason=f"{decision.reason}; not moved: {err}",
        )
        raise
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
            summary=summary | {"from": source.name, "step": "moved"} | _timings(result),
            reason=f"{decision.reason}; moved from host {source.name} to host {target.name}",
        )
    container.refresh_from_db()
    return container


def _timings(result: dict) -> dict:
    """What the audit event keeps of how the move went (pre-copy rounds, downtime)."""
    keys = ("rounds", "downtime_ms", "dump_ms", "restore_ms", "pages_ms", "mode")
    return {k: result[k] for k in keys if k in result}


def _precopy(container, target, acting_user, summary, mode="precopy") -> dict:
    """Pre-copy (or post-copy) over the direct channel; returns the target's result
    (StepFailed: the container runs on the source)."""
    source = container.host
    label = "post-copy" if mode == "postcopy" else "pre-copy"
    if not target.address:
        raise StepFailed(f"host {target.name} has no address the source could reach it at")
    session = secrets.token_hex(8)
    receive = steps.new_operation(
        "checkpoint.receive",
        target,
        container.team,
        "container",
        container.pk,
        acting_user,
        {"session": session, "source_host": source.pk, "mode": mode} | _moving(container),
    )
    steps.send(receive)  # the receive runs beside the send
    port = _port_of(receive)
    if not port:
        _call_off(receive)
        raise StepFailed(f"host {target.name} did not get ready to receive: {receive.error}")
    params = {
        "session": session,
        "target_host": target.pk,
        "port": port,
        "checkpoint": f"migrate-{session}",
        "mode": mode,
    }
    sent = _finished(
        _on_source(container, "container.precopy", acting_user, params, summary, check=False)
    )
    received = _outcome(receive)
    if received.state == Operation.State.SUCCEEDED:
        # Restored on the target (even if the source did not hear it answer).
        return received.result | {"mode": label} | _sent_timings(sent)
    if sent.state == Operation.State.SUCCEEDED:
        received = dispatch.wait_for(received, steps.STEP_SECONDS)
        if received.state == Operation.State.SUCCEEDED:
            return received.result | {"mode": label} | _sent_timings(sent)
    # The target has nothing: the container runs on (or is resumed) on the source.
    _on_source(container, "container.resume", acting_user, params, summary, check=False)
    raise StepFailed(
        f"migration to {target.name}: {sent.error or received.error or 'it did not finish'}"
    )


def _finished(op):
    """Wait on for a source step still running (a big memory takes longer than one step's
    wait) while its host beats: resuming under a running send would race it."""
    deadline = time.monotonic() + PRECOPY_SECONDS
    while not op.is_done and time.monotonic() < deadline:
        op.host.refresh_from_db(fields=["last_heartbeat", "state"])
        if not op.host.is_alive:
            break
        op = dispatch.wait_for(op, steps.STEP_SECONDS)
    return op


def _moving(container) -> dict:
    """What the target restores the container as (its agent may not read the source's row)."""
    return {"name": container.name, "labels": dict(container.spec.get("labels") or {})}


def _sent_timings(sent) -> dict:
    result = sent.result or {}
    keys = ("rounds", "downtime_ms", "dump_ms", "restore_ms", "pages_ms")
    return {k: result[k] for k in keys if k in result}


def _port_of(op) -> int:
    """The port the target listens on (0 if it failed or did not start in time)."""
    deadline = time.monotonic() + steps.STEP_SECONDS
    while time.monotonic() < deadline:
        row = Operation.objects.filter(pk=op.pk).values("state", "result", "error").first()
        port = (row["result"] or {}).get("port")
        if isinstance(port, int) and port > 0 and row["state"] == Operation.State.RUNNING:
            return port
        if row["state"] in (Operation.State.FAILED, Operation.State.SUCCEEDED):
            op.error = row["error"]
            return 0
        time.sleep(0.02)
    op.error = f"it did not start within {steps.STEP_SECONDS} s"
    return 0


def _call_off(op) -> bool:
    """Fail `op` if no agent took it yet; whether it was called off."""
    return bool(
        Operation.objects.filter(pk=op.pk, state=Operation.State.PENDING).update(
            state=Operation.State.FAILED,
            error="the migration was called off",
            finished_at=timezone.now(),
        )
    )


def _outcome(op):
    """The receive step's end (called off if it never started)."""
    op = dispatch.wait_for(op, steps.STEP_SECONDS)
    if op.state == Operation.State.PENDING:
        _call_off(op)
        op.refresh_from_db()
    return op


def _stop_and_copy(container, target, acting_user, summary) -> dict:
    """Checkpoint, archive through the control plane, volumes, restore; returns the target's
    result (StepFailed: the container was resumed on the source)."""
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
            params | {"sha256": transfer.sha256} | _moving(container),
        )
        result = _restored(op, container, target)
    except StepFailed:
        _on_source(container, "container.resume", acting_user, params, summary, check=False)
        raise
    finally:
        storage(transfer.pk).unlink(missing_ok=True)
        Transfer.objects.filter(pk=transfer.pk).update(state=Transfer.State.DONE)
    return result | {"mode": "stop-and-copy"}


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
