"""OpenAPI extensions: Berth's bearer tokens, and the error answers every operation documents."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from operations.api.serializers import OperationSerializer

# The error answers of every operation (the same body: api/errors.py), and when each comes.
ERRORS = {
    400: "The request is invalid (body, query or a named object); details say where.",
    401: "No valid session or API token.",
    403: "The gate refused the action (the reason is in the message and the audit log).",
    404: "No such object visible to this user.",
    405: "The method is not supported on this path (see the Allow header).",
    409: "The object's state or a name conflict refuses the action.",
    413: "The request body is too large.",
    503: "Redis or the host agent cannot be reached; nothing was changed.",
    504: "The host agent did not answer in time.",
}
# Views with throttles also answer 429 (the join endpoint).
THROTTLED = {429: "Too many attempts from this address; retry later."}


class ErrorDetailSerializer(serializers.Serializer):
    """What went wrong: a stable code, a message for people, and details (field errors...)."""

    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.JSONField()


class ErrorSerializer(serializers.Serializer):
    """The one error format: {"error": {"code", "message", "details"}}."""

    error = ErrorDetailSerializer()


class QueuedSerializer(serializers.Serializer):
    """An action handed to a host agent: its Operation (202 while pending, 200 once done)."""

    operation = OperationSerializer()


WAIT = OpenApiParameter(
    "wait",
    OpenApiTypes.NUMBER,
    description="Seconds to wait for the operation to finish (200) before answering 202.",
)
# What an action that queues an Operation calls (api/waiting.py): ?wait= and its 200/202.
_QUEUE_MARKERS = {"operation_response", "wait_seconds"}


def queues_operation(cls, func, depth: int = 3) -> bool:
    """Whether `func` (a view method) answers through api/waiting.py, directly or through the
    view's own helpers (`_verb`, `_queue`): found from the names its code uses, so that no view
    has to repeat in a decorator what its body already says."""
    names = set(getattr(getattr(func, "__code__", None), "co_names", ()))
    if names & _QUEUE_MARKERS:
        return True
    helpers = (getattr(cls, name, None) for name in names if name.startswith("_"))
    return depth > 0 and any(queues_operation(cls, h, depth - 1) for h in helpers if callable(h))


class BerthAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema with the error answers of every operation, and 200/202 and
    ?wait= on the actions that queue an Operation for a host agent."""

    def _queues(self) -> bool:
        action = getattr(self.view, "action", None)
        if not action or self.method == "GET":
            return False  # a GET only reads (GET save/ downloads what POST save/ wrote)
        method = getattr(type(self.view), action, None)
        return method is not None and queues_operation(type(self.view), method)

    def get_override_parameters(self):
        parameters = super().get_override_parameters()
        return [*parameters, WAIT] if self._queues() else parameters

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if self._queues():
            body = next((responses.pop(c) for c in ("202", "201", "200") if c in responses), None)
            if body is None or "content" not in body:
                body = self._get_response_for_code(QueuedSerializer, "202", direction=direction)
            responses.pop("204", None)
            responses["200"] = {**body, "description": "The operation finished within ?wait=."}
            responses["202"] = {**body, "description": "The operation is queued for the host."}
        errors = dict(ERRORS)
        if getattr(self.view, "throttle_classes", None):
            errors.update(THROTTLED)
        for status, description in sorted(errors.items()):
            if str(status) not in responses:
                answer = OpenApiResponse(ErrorSerializer, description=description)
                responses[str(status)] = self._get_response_for_code(
                    answer, str(status), direction=direction
                )
        return responses


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """`Authorization: Bearer <token>` (an API token from /api/v1/tokens/)."""

    target_class = "accounts.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token from /api/v1/tokens/.",
        }
