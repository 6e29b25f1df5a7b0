"""/api/v1/volumes/: named volumes of teams."""

import re

from rest_framework import serializers

from api.base import GatedListMixin, GatedRetrieveMixin, GatedViewSet
from api.fields import StrictSerializer
from api.lookups import pick_host, pick_team
from api.waiting import operation_response, wait_seconds
from config.errors import Conflict
from operations.services import do_host_operation
from volumes.models import Volume

VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")


class VolumeSerializer(serializers.ModelSerializer):
    """A volume as the API shows it."""

    class Meta:
        model = Volume
        fields = [
            "id",
            "name",
            "team",
            "host",
            "driver",
            "options",
            "labels",
            "state",
            "created_at",
        ]
        read_only_fields = fields


class VolumeCreateSerializer(StrictSerializer):
    """POST body of a volume; driver options that bind a host path need container.bind_mount."""

    name = serializers.RegexField(VOLUME_NAME_RE)
    team = serializers.CharField(required=False)
    host = serializers.CharField(required=False)
    driver = serializers.ChoiceField(choices=["local"], required=False, default="local")
    options = serializers.DictField(
        child=serializers.CharField(allow_blank=True), required=False, default=dict
    )
    labels = serializers.DictField(
        child=serializers.CharField(allow_blank=True), required=False, default=dict
    )


class VolumeViewSet(GatedListMixin, GatedRetrieveMixin, GatedViewSet):
    """Volumes of the teams you may see."""

    resource = "volume"
    gate_actions = {
        "list": "volume.view",
        "retrieve": "volume.view",
        "create": "volume.create",
        "destroy": "volume.delete",
    }
    queryset = Volume.objects.all()
    serializer_class = VolumeSerializer
    filterset_fields = ["team", "host", "state", "driver"]
    search_fields = ["name"]
    ordering_fields = ["name", "created_at"]

    def create(self, request):
        """Create a volume on a host (202 with the Operation)."""
        wait_seconds(request)
        # Refuse (and audit) before the body names a team the caller may not even see.
        self.require()
        body = VolumeCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        team, host = (
            pick_team(request.user, data.pop("team", None)),
            pick_host(request.user, data.pop("host", None)),
        )
        volume = Volume(team=team, host=host, **data)
        decision = self.require(volume, options={"options": volume.options})
        if Volume.objects.filter(host=host, name=volume.name).exists():
            raise Conflict(f"volume {volume.name!r} already exists on host {host.name}")

        def save():
            volume.save(force_insert=True)
            return volume.pk

        op = do_host_operation(
            decision,
            kind="volume.create",
            target_type="volume",
            host=host,
            team=team,
            acting_user=request.user,
            summary=self.summary() | {"body": request.data},
            before=save,
        )
        return operation_response(request, op, {"volume": VolumeSerializer(volume).data})

    def destroy(self, request, pk=None):
        """Remove a volume (202 with the Operation)."""
        wait_seconds(request)
        volume = self.get_object()
        decision = self.require(volume)
        op = do_host_operation(
            decision,
            kind="volume.remove",
            target_type="volume",
            target_id=volume.pk,
            host=volume.host,
            team=volume.team,
            acting_user=request.user,
            summary=self.summary(),
        )
        return operation_response(request, op)
