"""The error the gate raises when it refuses an action."""

from config.errors import Forbidden, NotFound


class AccessDenied(Forbidden):
    """The gate said no (HTTP 403); `decision` says why."""

    code = "permission_denied"

    def __init__(self, decision):
        super().__init__(decision.reason, details={"action": decision.action})
        self.decision = decision


class NotVisible(NotFound):
    """The object does not exist or belongs to someone the caller may not see (HTTP 404)."""
