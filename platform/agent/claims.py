"""Claiming and finishing Operations: the row in the database is the truth, not the message."""

import logging

from django.db import transaction
from django.utils import timezone

from operations import completion
from operations.models import Operation

log = logging.getLogger(__name__)
State = Operation.State


def claim(
    op_id: int, *, host_name: str, task_id: str = "", recovering: bool = False
) -> Operation | None:
    """Move the operation pending -> running and return it; None if it is not ours to run.

    The conditional UPDATE makes a redelivered or duplicated task a no-op: only one caller sees
    one updated row. `recovering` also takes back an operation left 'running' by an agent of
    this host that died mid-task (every runtime verb is idempotent, so running it again converges).
    """
    fields = {"state": State.RUNNING, "started_at": timezone.now()}
    if task_id:
        fields["task_id"] = task_id
    mine = Operation.objects.filter(id=op_id, host__name=host_name)
    if mine.filter(state=State.PENDING).update(**fields) == 1:
        return Operation.objects.select_related("host").get(id=op_id)
    if recovering and mine.filter(state=State.RUNNING).update(**fields) == 1:
        return Operation.objects.select_related("host").get(id=op_id)
    op = Operation.objects.filter(id=op_id).values("state", "host__name").first()
    if op is None:
        log.warning("operation %s does not exist; task ignored", op_id)
    elif op["host__name"] != host_name:
        log.warning(
            "operation %s belongs to host %s, not %s; ignored", op_id, op["host__name"], host_name
        )
    else:
        log.info("operation %s is %s already; task ignored", op_id, op["state"])
    return None


def finish(op: Operation, *, result: dict | None = None, error: str = "") -> None:
    """Record the outcome, once: only a running operation moves to succeeded or failed."""
    state = State.FAILED if error else State.SUCCEEDED
    with transaction.atomic():
        Operation.objects.filter(id=op.id, state=State.RUNNING).update(
            state=state, result=result or {}, error=error, finished_at=timezone.now()
        )
    op.state, op.result, op.error = state, result or {}, error
    # Wake a request waiting on ?wait= now rather than at its next poll; only once the row
    # is committed (at once here, or when an outer transaction commits), since it reads that.
    transaction.on_commit(lambda: completion.publish(op.id, state))
