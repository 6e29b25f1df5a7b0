"""Serializer of Operation rows."""

from rest_framework import serializers

from operations.models import Operation


class OperationSerializer(serializers.ModelSerializer):
    """An Operation as the API shows it (read only)."""

    host_name = serializers.CharField(source="host.name", read_only=True)

    class Meta:
        model = Operation
        fields = [
            "id",
            "kind",
            "target_type",
            "target_id",
            "host",
            "host_name",
            "team",
            "params",
            "state",
            "error",
            "result",
            "task_id",
            "request_id",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields
