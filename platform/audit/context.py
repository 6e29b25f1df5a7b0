"""Who and where a request comes from, for the audit events it causes. No Django imports.

The request middleware fills it; a Celery task or a management command may set its own.
"""

import contextlib
import contextvars
import os
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


def new_request_id() -> str:
    """A fresh request id: 32 random hex digits, as uuid4().hex writes them (without building a
    UUID object: about 1 % of an API list request, issue 19)."""
    return os.urandom(16).hex()


def current() -> AuditContext:
    """The context of the running request or task (empty outside one)."""
    return _current.get() or _EMPTY


@contextlib.contextmanager
def bind(**values):
    """Run a block with an audit context (a request id is made up when none is given)."""
    if "request_id" not in values:  # (setdefault would make one for every request)
        values["request_id"] = new_request_id()
    token = _current.set(AuditContext(**values))
    try:
        yield _current.get()
    finally:
        _current.reset(token)
