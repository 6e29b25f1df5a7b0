"""Generic host operation: audit the allowed decision, create the Operation, send it after commit."""

from django.db import transaction

from audit import context
from config.errors import Unavailable
from operations import dispatch
from rbac import gate


def do_host_operation(
    decision,
    *,
    kind,
    target_type,
    host,
    team=None,
    target_id="",
    params=None,
    acting_user,
    summary=None,
    before=None,
):
    """Run `before()` (which may save rows and return the target id), then queue `kind` on `host`."""
    try:
        dispatch.check_broker()
    except Unavailable as exc:
        gate.record(decision, summary=summary, outcome=gate.FAILED, reason=exc.message)
        raise
    with transaction.atomic():
        if before is not None:
            target_id = before() or target_id
        op = dispatch.new_operation(
            kind=kind,
            target_type=target_type,
            target_id=target_id,
            host=host,
            team=team,
            params=params or {},
            user=acting_user,
            request_id=context.current().request_id,
        )
        gate.record(decision, summary=summary, operation=op)
        dispatch.send_after_commit(op)
    return op
