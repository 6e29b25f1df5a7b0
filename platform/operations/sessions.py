"""Queue a stream session (terminal, exec, attach, log follow) for a container's host agent.

The caller has already decided and may not have recorded the decision: the session's
Operation is created, the decision recorded with it, and the signed task sent after commit;
the agent's relay (agent/streams.py) then talks to the session's Channels group.
"""

from django.db import transaction

from audit import context
from dashboard import terminal_protocol as proto
from operations import dispatch
from rbac import gate
from trust import envelope, keys


def queue_session(user, container, decision, *, summary: dict, params: dict) -> int:
    """Create and send the session's Operation; returns its id (Unavailable when Redis is down:
    the decision is then recorded as failed and nothing is queued)."""
    try:
        dispatch.check_broker()
    except Exception as exc:
        gate.record(decision, summary=summary, outcome=gate.FAILED, reason=str(exc))
        raise
    with transaction.atomic():
        op = dispatch.new_operation(
            kind=proto.OPERATION_KIND,
            target_type="container",
            target_id=container.pk,
            host=container.host,
            team=container.team,
            params=params,
            user=user,
            request_id=context.current().request_id,
        )
        gate.record(decision, summary=summary, operation=op)
        host, op_id, task_id = container.host, op.pk, op.task_id
        transaction.on_commit(
            lambda: dispatch.send_signed(proto.TASK_NAME, host, [op_id], task_id=task_id)
        )
    return op_id


def signed_command(host_name: str, session: str, seq: int, message: dict) -> dict:
    """One command for the agent's relay (input, resize, end of input, close), signed for this
    session, its place in the sequence and this host: Redis cannot forge or replay one."""
    message = dict(message, seq=seq)
    message["envelope"] = envelope.seal(
        keys.control_private_key(),
        task=message["type"],
        host=host_name,
        args=proto.signed_args(session, seq, message),
        ttl=proto.COMMAND_TTL,
    )
    return message
