"""/api/v1/backups/: the runs (backup.view) with the schedule's status; POST queues a backup
(backup.run) for the control-plane worker (queue berth.control)."""

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from api.base import GatedListMixin, GatedRetrieveMixin, GatedViewSet
from backups import status as backup_status
from backups.models import BackupRun
from config.celery import app as celery_app
from config.errors import InvalidRequest
from operations import dispatch

CONTROL_QUEUE = "berth.control"


class BackupRunSerializer(serializers.ModelSerializer):
    """A backup or restore run (read only)."""

    class Meta:
        model = BackupRun
        fields = [
            "id",
            "kind",
            "trigger",
            "state",
            "set_id",
            "path",
            "size_bytes",
            "duration_seconds",
            "error",
            "summary",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class BackupRequestSerializer(serializers.Serializer):
    """What POST takes: which volumes and how images are kept."""

    volumes = serializers.ListField(child=serializers.CharField(max_length=128), required=False)
    images = serializers.ChoiceField(choices=["refs", "blobs"], required=False, default="refs")

    def validate(self, attrs):
        unknown = (
            set(self.initial_data) - set(self.fields)
            if hasattr(self.initial_data, "keys")
            else set()
        )
        if unknown:
            raise serializers.ValidationError(f"unknown fields: {', '.join(sorted(unknown))}")
        return attrs


class BackupRunViewSet(GatedListMixin, GatedRetrieveMixin, GatedViewSet):
    """Backup runs, newest first; `status` gives last success, failure alarm and next run."""

    resource = "backup"
    gate_actions = {
        "list": "backup.view",
        "retrieve": "backup.view",
        "status": "backup.view",
        "create": "backup.run",
    }
    queryset = BackupRun.objects.all()
    serializer_class = BackupRunSerializer

    @extend_schema(request=BackupRequestSerializer, responses={202: BackupRunSerializer})
    def create(self, request, *args, **kwargs):
        """Queue one backup of the whole platform; 202 with its run (state running)."""
        body = BackupRequestSerializer(data=request.data)
        if not body.is_valid():
            raise InvalidRequest("invalid backup request", details=body.errors)
        volumes = body.validated_data.get("volumes") or ["all"]
        self.authorize()
        dispatch.check_broker()
        with transaction.atomic():
            run = BackupRun.objects.create(trigger=BackupRun.Trigger.API, created_by=request.user)
            args = [run.pk, volumes, body.validated_data["images"]]
            transaction.on_commit(
                lambda: celery_app.send_task("backups.run_backup", args=args, queue=CONTROL_QUEUE)
            )
        return Response(BackupRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @action(detail=False, methods=["get"])
    def status(self, request):
        """Last success, last failure, whether a failure is newer (alarm), next scheduled run."""
        self.authorize()
        data = backup_status.overview()
        ser = BackupRunSerializer
        return Response(
            {
                "last_success": ser(data["last_success"]).data if data["last_success"] else None,
                "last_failure": ser(data["last_failure"]).data if data["last_failure"] else None,
                "alarm": data["alarm"],
                "next_run": data["next_run"].isoformat(),
            }
        )
