"""Answer 202 with an Operation, or wait for it when the client asked ?wait=<seconds>."""

import math

from rest_framework import status
from rest_framework.response import Response

from config.errors import InvalidRequest
from operations.api.serializers import OperationSerializer
from operations.dispatch import wait_for


def wait_seconds(request) -> float:
    """The ?wait= parameter as seconds (0 when absent)."""
    raw = request.query_params.get("wait")
    if raw in (None, ""):
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise InvalidRequest(f"wait must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise InvalidRequest(f"wait must be a finite number of seconds >= 0, got {raw!r}")
    return value


def operation_response(request, operation, extra=None) -> Response:
    """202 with the operation; 200 when ?wait= saw it finish.

    `extra` is a dict, or a callable giving one after the wait, so objects the operation
    changed are shown as the agent left them, not as they were before.
    """
    seconds = wait_seconds(request)
    if seconds:
        operation = wait_for(operation, seconds)
    if callable(extra):
        extra = extra()
    body = {"operation": OperationSerializer.answer(operation), **(extra or {})}
    code = status.HTTP_200_OK if operation.is_done else status.HTTP_202_ACCEPTED
    return Response(body, status=code)
