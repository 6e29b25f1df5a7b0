"""/api/v1/networks/: bridge networks of teams."""

import ipaddress

from rest_framework import serializers

from api.base import GatedListMixin, GatedRetrieveMixin, GatedViewSet
from api.fields import StrictSerializer
from api.host_resources import HostResourceMixin
from networks.models import Network

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


class NetworkViewSet(HostResourceMixin, GatedListMixin, GatedRetrieveMixin, GatedViewSet):
    """Networks of the teams you may see."""

    resource = "network"
    gate_actions = {
        "list": "network.view",
        "retrieve": "network.view",
        "create": "network.create",
        "destroy": "network.delete",
    }
    queryset = Network.objects.all()
    serializer_class = NetworkSerializer
    create_serializer_class = NetworkCreateSerializer
    filterset_fields = ["team", "host", "state"]
    search_fields = ["name"]
    ordering_fields = ["name", "created_at"]
