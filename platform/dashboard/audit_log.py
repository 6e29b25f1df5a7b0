"""Audit events of the dashboard's own decisions (logins), written through the audit service."""

from audit.services import record_event


def record_login(request, username: str, *, outcome: str, reason: str, user=None) -> None:
    """Append an auth.login event: who tried, the outcome and why (lockout, bad password)."""
    record_event(
        actor=user,
        action="auth.login",
        outcome=outcome,
        reason=reason,
        object_type="user",
        object_id=getattr(user, "pk", "") or "",
        object_repr=username[:150],
        summary={"username": username[:150], "via": "dashboard"},
    )
