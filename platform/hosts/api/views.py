"""/api/v1/hosts/: enrol hosts (with a one-time join token), cordon, uncordon and remove them."""

from datetime import timedelta

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from api.base import (
    GatedListMixin,
    GatedRetrieveMixin,
    GatedUpdateMixin,
    GatedViewSet,
)
from api.fields import StrictCharField, StrictIntegerField, StrictSerializer
from config.errors import Conflict
from hosts import drain as draining
from hosts import enrolment, services
from hosts.models import Host


class HostSerializer(serializers.ModelSerializer):
    """A host; state, heartbeat and key are written by enrolment, its agent and the actions."""

    class Meta:
        model = Host
        fields = [
            "id",
            "name",
            "queue",
            "address",
            "state",
            "cordoned",
            "revoked_at",
            "public_key",
            "last_heartbeat",
            "info",
            "created_at",
        ]
        read_only_fields = [f for f in fields if f != "address"]

    def to_internal_value(self, data):
        # Fail closed like StrictSerializer: a field we do not take is an error, not ignored.
        if isinstance(data, dict):
            unknown = sorted(set(data) - {"address"})
            if unknown:
                raise serializers.ValidationError(
                    {name: ["unknown or read-only field"] for name in unknown}
                )
        return super().to_internal_value(data)


_TTL_HELP = "how long the join token is valid, in seconds (default 3600, at most 86400)"


class HostCreateSerializer(StrictSerializer):
    """POST body: the new host's name (its queue is host.<name>) and its join token's lifetime."""

    name = serializers.SlugField(max_length=63)
    address = StrictCharField(max_length=255, required=False, default="", allow_blank=True)
    expires_in = StrictIntegerField(
        required=False, default=3600, min_value=60, max_value=86400, help_text=_TTL_HELP
    )


class JoinTokenRequestSerializer(StrictSerializer):
    """POST body of a new join token for a host that has not joined."""

    expires_in = StrictIntegerField(
        required=False, default=3600, min_value=60, max_value=86400, help_text=_TTL_HELP
    )


class JoinTokenSerializer(serializers.Serializer):
    """A join token, shown once: give it to `scripts/berth-agent --join URL TOKEN`."""

    join_token = serializers.CharField()
    join_expires_at = serializers.DateTimeField()
    join_command = serializers.CharField()


class EnrolledHostSerializer(HostSerializer):
    """The enrolled host with its join token (shown this once)."""

    join_token = serializers.CharField(read_only=True)
    join_expires_at = serializers.DateTimeField(read_only=True)
    join_command = serializers.CharField(read_only=True)

    class Meta(HostSerializer.Meta):
        fields = [*HostSerializer.Meta.fields, "join_token", "join_expires_at", "join_command"]
        read_only_fields = fields


def _token_body(request, row, secret) -> dict:
    url = request.build_absolute_uri("/")
    return {
        "join_token": secret,
        "join_expires_at": serializers.DateTimeField().to_representation(row.expires_at),
        "join_command": f"scripts/berth-agent --join {url} {secret}",
    }


class DrainReportSerializer(serializers.Serializer):
    """What a drain moved, and what it could not move (with the reason)."""

    moved = serializers.ListField(child=serializers.DictField())
    failed = serializers.ListField(child=serializers.DictField())


class HostViewSet(
    GatedListMixin,
    GatedRetrieveMixin,
    GatedUpdateMixin,
    GatedViewSet,
):
    """Hosts: enrolled by admins, joined by their agents."""

    resource = "host"
    gate_actions = {
        "list": "host.view",
        "retrieve": "host.view",
        "create": "host.create",
        "update": "host.change",
        "partial_update": "host.change",
        "destroy": "host.delete",
        "cordon": "host.change",
        "uncordon": "host.change",
        "drain": "host.change",
        "join_token": "host.create",
    }
    queryset = Host.objects.all()
    serializer_class = HostSerializer
    filterset_fields = ["state", "name", "cordoned"]
    search_fields = ["name", "address"]
    ordering_fields = ["name", "last_heartbeat"]

    @extend_schema(request=HostCreateSerializer, responses={201: EnrolledHostSerializer})
    def create(self, request):
        """Enrol a host: it stays `pending` until its agent joins with the one-time token."""
        body = HostCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        decision = self.require(Host(name=data["name"], address=data["address"]))
        host, row, secret = enrolment.enrol_host(
            decision,
            name=data["name"],
            address=data["address"],
            ttl=timedelta(seconds=data["expires_in"]),
            summary=self.summary() | {"name": data["name"]},
        )
        return Response(
            HostSerializer(host).data | _token_body(request, row, secret),
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(request=JoinTokenRequestSerializer, responses={201: JoinTokenSerializer})
    @action(detail=True, methods=["post"], url_path="join-token")
    def join_token(self, request, pk=None):
        """A new one-time join token for a host that has not joined (earlier ones stop working)."""
        host = self.get_object()
        body = JoinTokenRequestSerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        decision = self.require(host)
        row, secret = enrolment.reissue(
            decision,
            host,
            ttl=timedelta(seconds=body.validated_data["expires_in"]),
            summary=self.summary(),
        )
        return Response(_token_body(request, row, secret), status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: HostSerializer})
    @action(detail=True, methods=["post"])
    def cordon(self, request, pk=None):
        """Place no new containers on this host; the ones it runs keep running."""
        host = self.get_object()
        host = services.set_cordoned(self.require(host), host, True, summary=self.summary())
        return Response(HostSerializer(host).data)

    @extend_schema(request=None, responses={200: HostSerializer})
    @action(detail=True, methods=["post"])
    def uncordon(self, request, pk=None):
        """Let this host take new containers again."""
        host = self.get_object()
        host = services.set_cordoned(self.require(host), host, False, summary=self.summary())
        return Response(HostSerializer(host).data)

    @extend_schema(request=None, responses={200: DrainReportSerializer})
    @action(detail=True, methods=["post"])
    def drain(self, request, pk=None):
        """Cordon it and recreate its containers on other hosts, named volumes copied."""
        host = self.get_object()
        decision = self.require(host)
        if host.revoked_at is not None:
            raise Conflict(f"host {host.name} was removed; nothing can be moved off it")
        report = draining.drain(decision, host, acting_user=request.user, summary=self.summary())
        return Response(report.as_dict())

    @extend_schema(
        parameters=[
            OpenApiParameter("force", bool, description="remove it even while it runs containers")
        ],
        responses={200: HostSerializer},
    )
    def destroy(self, request, pk=None):
        """Remove the host: its key is revoked, it gets no more messages; its rows stay."""
        host = self.get_object()
        decision = self.require(host)
        force = request.query_params.get("force") in ("1", "true")
        host = services.remove(decision, host, force=force, summary=self.summary())
        return Response(HostSerializer(host).data)
