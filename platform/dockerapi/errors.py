"""Docker-style errors: every failure answers `{"message": ...}` with Docker's status codes."""

from django.http import JsonResponse
from rest_framework.exceptions import ValidationError

from api.errors import _message_of
from config.errors import PlatformError
from rbac.errors import AccessDenied, NotVisible


class DockerError(Exception):
    """An answer in Docker's error format: HTTP `status` with `{"message": message}`."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> DockerError:
    """400: the request is malformed or names an unknown field."""
    return DockerError(400, message)


def not_supported(what: str) -> DockerError:
    """501: a part of the Docker API (or an option) that Berth does not implement yet."""
    return DockerError(501, f"Berth does not support {what} yet")


def response(status: int, message: str) -> JsonResponse:
    """The JSON answer of an error."""
    return JsonResponse({"message": message}, status=status)


def from_exception(exc: Exception) -> DockerError | None:
    """The Docker error of a known exception (gate refusals, platform errors, validation)."""
    if isinstance(exc, DockerError):
        return exc
    if isinstance(exc, AccessDenied):
        return DockerError(403, f"Berth refused this request: {exc.message}")
    if isinstance(exc, NotVisible):
        return DockerError(404, exc.message)
    if isinstance(exc, PlatformError):
        return DockerError(exc.status, exc.message)
    if isinstance(exc, ValidationError):
        return DockerError(400, f"invalid container spec: {_message_of(exc.detail)}")
    return None
