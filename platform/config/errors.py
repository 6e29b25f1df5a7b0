"""Errors the control plane raises: each maps to one HTTP status and a user-facing message.

The web process never imports `runtime`, so these mirror `runtime.errors.BerthError` in spirit:
`str(err)` is a message a person can act on.
"""


class PlatformError(Exception):
    """Base of every control-plane error; carries an error code, an HTTP status and details."""

    status = 400
    code = "error"

    def __init__(self, message: str, *, details=None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code:
            self.code = code


class InvalidRequest(PlatformError):
    """The request body or a parameter is malformed or not allowed."""

    status = 400
    code = "invalid"


class Forbidden(PlatformError):
    """The gate refused the action."""

    status = 403
    code = "forbidden"


class NotFound(PlatformError):
    """No such object, or one the caller may not see (the two look the same)."""

    status = 404
    code = "not_found"


class Conflict(PlatformError):
    """The name is taken, the object is in use, or its state refuses the action."""

    status = 409
    code = "conflict"


class Unavailable(PlatformError):
    """A service the action needs (Redis, the host agent) cannot be reached."""

    status = 503
    code = "unavailable"


class HostTimeout(PlatformError):
    """The host agent did not answer in time."""

    status = 504
    code = "timeout"
