"""/api/v1/hosts/: the hosts that run an agent."""

from rest_framework import serializers

from api.base import (
    GatedCreateMixin,
    GatedDestroyMixin,
    GatedListMixin,
    GatedRetrieveMixin,
    GatedUpdateMixin,
    GatedViewSet,
)
from hosts.models import Host


class HostSerializer(serializers.ModelSerializer):
    """A host; state and heartbeat are written by its agent only."""

    class Meta:
        model = Host
        fields = ["id", "name", "queue", "address", "state", "last_heartbeat", "info", "created_at"]
        read_only_fields = ["queue", "state", "last_heartbeat", "info", "created_at"]


class HostViewSet(
    GatedListMixin,
    GatedRetrieveMixin,
    GatedCreateMixin,
    GatedUpdateMixin,
    GatedDestroyMixin,
    GatedViewSet,
):
    """Hosts."""

    resource = "host"
    gate_actions = {
        "list": "host.view",
        "retrieve": "host.view",
        "create": "host.create",
        "update": "host.change",
        "partial_update": "host.change",
        "destroy": "host.delete",
    }
    queryset = Host.objects.all()
    serializer_class = HostSerializer
    filterset_fields = ["state", "name"]
    search_fields = ["name", "address"]
    ordering_fields = ["name", "last_heartbeat"]
