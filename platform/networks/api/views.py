"""/api/v1/networks/: bridge networks of teams."""

import ipaddress

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action

from api.base import GatedListMixin, GatedRetrieveMixin, GatedViewSet
from api.fields import StrictSerializer
from api.host_resources import HostResourceMixin
from api.lookups import pick
from api.waiting import operation_response, wait_seconds
from containers.models import Container
from networks import joins
from networks.models import Network
from rbac import gate

PRIVATE_RANGES = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)


class NetworkSerializer(serializers.ModelSerializer):
    """A network as the API shows it."""

    class Meta:
        model = Network
        fields = [
            "id",
            "name",
            "team",
            "host",
            "subnet",
            "gateway",
            "labels",
            "state",
            "created_at",
        ]
        read_only_fields = fields


class NetworkCreateSerializer(StrictSerializer):
    """POST body of a network."""

    name = serializers.SlugField(max_length=64)
    team = serializers.CharField(required=False)
    host = serializers.CharField(required=False)
    subnet = serializers.CharField(required=False, default="", allow_blank=True, max_length=43)
    gateway = serializers.IPAddressField(required=False, default="", allow_blank=True)
    labels = serializers.DictField(
        child=serializers.CharField(allow_blank=True), required=False, default=dict
    )

    def validate_subnet(self, value):
        if value:
            try:
                net = ipaddress.ip_network(value)
            except ValueError:
                raise serializers.ValidationError(f"invalid subnet {value!r}") from None
            # The host routes the subnet into the bridge: a public, loopback or link-local
            # range would divert the host's own traffic there (RFC 1918 only, as Docker's pools).
            if not any(net.subnet_of(p) for p in PRIVATE_RANGES if p.version == net.version):
                raise serializers.ValidationError(
                    f"subnet {value} is not a private range (use 10/8, 172.16/12 or 192.168/16)"
                )
        return value


class ConnectSerializer(StrictSerializer):
    """POST body of a network connect: which container, and its names on this network."""

    container = serializers.CharField(max_length=128, help_text="the container's id or name")
    aliases = serializers.ListField(
        child=serializers.CharField(max_length=63), required=False, default=list, max_length=16
    )
    ip_address = serializers.IPAddressField(protocol="IPv4", required=False, allow_null=True)


class DisconnectSerializer(StrictSerializer):
    """POST body of a network disconnect."""

    container = serializers.CharField(max_length=128, help_text="the container's id or name")


class NetworkViewSet(HostResourceMixin, GatedListMixin, GatedRetrieveMixin, GatedViewSet):
    """Networks of the teams you may see."""

    resource = "network"
    gate_actions = {
        "list": "network.view",
        "retrieve": "network.view",
        "create": "network.create",
        "destroy": "network.delete",
        # Connecting changes the container: the gate decides container.change on it.
        "connect": "container.change",
        "disconnect": "container.change",
    }
    queryset = Network.objects.all()
    serializer_class = NetworkSerializer
    create_serializer_class = NetworkCreateSerializer
    filterset_fields = ["team", "host", "state"]
    search_fields = ["name"]
    ordering_fields = ["name", "created_at"]

    def _container(self, network, value):
        """The named container on the network's host, if the caller may see it (else 400)."""
        visible = gate.restrict(
            Container.objects.select_related("team", "host"), self.request.user, "container.view"
        ).filter(host_id=network.host_id)
        return pick(visible.exclude(desired_state=Container.Desired.REMOVED), value, "container")

    @extend_schema(request=ConnectSerializer)
    @action(detail=True, methods=["post"])
    def connect(self, request, pk=None):
        """Connect a container of the network's team to it (at once if it runs)."""
        wait_seconds(request)
        network = self.get_object()
        body = ConnectSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        container = self._container(network, data["container"])
        op = joins.do_connect(
            container,
            network,
            aliases=data["aliases"],
            ip_address=data.get("ip_address"),
            acting_user=request.user,
            summary=self.summary(),
        )
        return operation_response(request, op)

    @extend_schema(request=DisconnectSerializer)
    @action(detail=True, methods=["post"])
    def disconnect(self, request, pk=None):
        """Disconnect a container from the network (at once if it runs)."""
        wait_seconds(request)
        network = self.get_object()
        body = DisconnectSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        container = self._container(network, body.validated_data["container"])
        op = joins.do_disconnect(
            container, network, acting_user=request.user, summary=self.summary()
        )
        return operation_response(request, op)
