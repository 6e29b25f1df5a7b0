"""A refused sign-in: what the person is told, what the audit log keeps; nobody signed in."""

from audit.services import record_event


class Refused(Exception):
    """A directory sign-in that must not go through; `message` is shown, `reason` audited."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.message = message
        self.reason = reason or message


def record_sign_in(
    *, source: str, username: str, outcome: str, reason: str, user=None, action="auth.login"
):
    """Append an auth.login (or auth.logout) event for a directory sign-in (never a token or a password)."""
    record_event(
        actor=user,
        action=action,
        outcome=outcome,
        reason=reason,
        object_type="user",
        object_id=getattr(user, "pk", "") or "",
        object_repr=(username or "")[:150],
        summary={"username": (username or "")[:150], "via": source},
    )


def refuse(request, *, source: str, username: str, refusal: Refused) -> None:
    """Audit a refusal and leave its message on the request for the login page."""
    record_sign_in(source=source, username=username, outcome="denied", reason=refusal.reason)
    if request is not None:
        request.berth_login_error = refusal.message
