"""POST /api/v1/hosts/join/: a new machine presents its join token and gets its identity.

No session and no API token: the one-time join token in the body is the credential, so the
view has no authentication (and hence no CSRF check), is rate-limited per client address, and
every attempt is written to the audit log as `host.join` by hosts.joining.
"""

import math

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle

from api.base import GatedViewSet
from api.fields import StrictCharField, StrictSerializer
from hosts import joining
from rbac import gate


class StrictNumberField(serializers.FloatField):
    """A JSON number (not a string, not a boolean, not NaN or infinity)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        if isinstance(data, float) and not math.isfinite(data):
            self.fail("invalid")
        return super().to_internal_value(data)


class JoinSerializer(StrictSerializer):
    """What the joining agent sends."""

    token = StrictCharField(max_length=200, help_text="the one-time join token")
    public_key = StrictCharField(
        max_length=100, help_text="the agent's Ed25519 public key: base64 of its 32 raw bytes"
    )
    agent_time = StrictNumberField(
        min_value=0, max_value=2**40, help_text="the agent's clock, unix seconds"
    )


class JoinAnswerSerializer(serializers.Serializer):
    """What the agent is told: who it is, whom to trust, and the broker when it is not REDIS_URL."""

    host = serializers.CharField()
    queue = serializers.CharField()
    control_keys = serializers.ListField(child=serializers.CharField())
    server_time = serializers.FloatField()
    broker_url = serializers.CharField(required=False)


class JoinThrottle(SimpleRateThrottle):
    """Join attempts per client address (settings.BERTH_JOIN_RATE, default 30/min)."""

    scope = "host_join"

    def get_rate(self):
        return getattr(settings, "BERTH_JOIN_RATE", "30/min")

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class HostJoinViewSet(GatedViewSet):
    """The join endpoint of new hosts."""

    resource = "host"
    gate_actions = {"create": "host.join"}
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [JoinThrottle]

    def throttled(self, request, wait):
        gate.record_secret_use(
            joining.ACTION,
            None,
            allowed=False,
            reason="too many join attempts from this address",
            summary={"method": request.method, "path": request.path},
        )
        super().throttled(request, wait)

    def _refuse_malformed(self, what: str, summary: dict) -> None:
        gate.record_secret_use(
            joining.ACTION,
            None,
            allowed=False,
            reason=f"malformed join request: {what}"[:200],
            summary=summary,
        )

    @extend_schema(request=JoinSerializer, responses={200: JoinAnswerSerializer}, auth=[])
    def create(self, request):
        """Join as an enrolled host with its one-time token; answers the agent's identity."""
        summary = {"method": request.method, "path": request.path}
        try:
            body = JoinSerializer(data=request.data)
        except exceptions.APIException as err:  # not JSON, or not a media type we parse
            self._refuse_malformed(str(err.detail), summary)
            raise
        if not body.is_valid():
            # Garbage is refused (400) and recorded, without the token it may contain.
            self._refuse_malformed(", ".join(sorted(body.errors)), summary)
            body.is_valid(raise_exception=True)
        data = body.validated_data
        joined = joining.join(
            token=data["token"],
            public_key=data["public_key"],
            agent_time=data["agent_time"],
            summary=summary,
        )
        return Response(joined.body())
