"""Who and where a request comes from, for the audit events it causes. No Django imports.

The request middleware fills it; a Celery task or a management command may set its own.
"""

import contextlib
import contextvars
import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class AuditContext:
    """Request id, source address and impersonator of the current request or task."""

    request_id: str = ""
    source_ip: str | None = None
    impersonator: str = ""
    task_id: str = ""


_EMPTY = AuditContext()
_current: contextvars.ContextVar[AuditContext | None] = contextvars.ContextVar(
    "berth_audit_context", default=None
)


def current() -> AuditContext:
    """The context of the running request or task (empty outside one)."""
    return _current.get() or _EMPTY


@contextlib.contextmanager
def bind(**values):
    """Run a block with an audit context (a request id is made up when none is given)."""
    values.setdefault("request_id", uuid.uuid4().hex)
    token = _current.set(AuditContext(**values))
    try:
        yield _current.get()
    finally:
        _current.reset(token)
