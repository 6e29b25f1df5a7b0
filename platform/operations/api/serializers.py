"""Serializer of Operation rows."""

from django.conf import settings
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

    @staticmethod
    def answer(op: Operation) -> dict:
        """The same dict as `OperationSerializer(op).data`, written out by hand: DRF builds
        the ModelSerializer's sixteen fields again for every instance, a few ms of CPU in each
        create and lifecycle answer (tests/platform/test_plat_create_answer.py compares them)."""
        return {
            "id": op.pk,
            "kind": op.kind,
            "target_type": op.target_type,
            "target_id": op.target_id,
            "host": op.host_id,
            "host_name": op.host.name,
            "team": op.team_id,
            "params": op.params,
            "state": op.state,
            "error": op.error,
            "result": op.result,
            "task_id": op.task_id,
            "request_id": op.request_id,
            "created_at": when(op.created_at),
            "started_at": when(op.started_at),
            "finished_at": when(op.finished_at),
        }


_DATETIME = serializers.DateTimeField()


def when(value):
    """A date-time as DRF's DateTimeField writes it (UTC's `+00:00` as `Z`), None as None."""
    if value is None:
        return None
    if settings.TIME_ZONE == "UTC" and value.utcoffset() is not None and not value.utcoffset():
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    return _DATETIME.to_representation(value)
