"""One error format for the whole API: {"error": {"code", "message", "details"}}."""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from config.errors import PlatformError

logger = logging.getLogger(__name__)


def error_body(code: str, message: str, details=None) -> dict:
    """The JSON body of every error answer."""
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _message_of(detail) -> str:
    if isinstance(detail, list) and detail:
        return _message_of(detail[0])
    if isinstance(detail, dict) and detail:
        key, value = next(iter(detail.items()))
        inner = _message_of(value)
        return inner if key in ("non_field_errors", "detail") else f"{key}: {inner}"
    return str(detail)


def exception_handler(exc, context):
    """Map platform errors, DRF errors and Django's 404/403 onto the one error format."""
    if isinstance(exc, PlatformError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status)
    if isinstance(exc, ProtectedError | RestrictedError):
        return Response(
            error_body("conflict", "the object is still in use by other objects"), status=409
        )
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("too_large", "the request body is too large"), status=413)
    if isinstance(exc, RecursionError):
        # json.loads recursing through thousands of nested arrays: a malformed body, not a bug.
        return Response(
            error_body("invalid", "the request body is nested too deeply to be read"), status=400
        )
    if isinstance(exc, SuspiciousOperation):
        # Too many form fields or files, a malformed multipart body: the client's fault.
        return Response(error_body("invalid", "the request could not be read"), status=400)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        # A bug, not a refusal: log it with its traceback, answer in the one format.
        logger.error("unhandled error in %s", context.get("view"), exc_info=exc)
        return Response(
            error_body("server_error", "internal error; see the server log"), status=500
        )
    if isinstance(exc, exceptions.ValidationError):
        body = error_body("invalid", _message_of(exc.detail), exc.detail)
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail
        message = str(detail) if not isinstance(detail, dict | list) else _message_of(detail)
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        body = error_body(code, message)
    else:  # pragma: no cover - DRF only answers for APIException
        body = error_body("error", str(exc))
    response.data = body
    if response.status_code == status.HTTP_401_UNAUTHORIZED and "WWW-Authenticate" not in response:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response
