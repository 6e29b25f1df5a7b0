"""Operations: list and read (the agent writes them)."""

from api.base import GatedListMixin, GatedRetrieveMixin, GatedViewSet
from operations.api.serializers import OperationSerializer
from operations.models import Operation


class OperationViewSet(GatedListMixin, GatedRetrieveMixin, GatedViewSet):
    """Operations on the hosts, newest first."""

    resource = "operation"
    gate_actions = {"list": "operation.view", "retrieve": "operation.view"}
    queryset = Operation.objects.select_related("host")
    serializer_class = OperationSerializer
    filterset_fields = ["state", "kind", "target_type", "target_id", "host", "team"]
    ordering_fields = ["created_at", "finished_at", "state"]
