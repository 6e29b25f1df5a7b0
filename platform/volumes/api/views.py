"""/api/v1/volumes/: named volumes of teams."""

import re

from rest_framework import serializers

from api.base import GatedListMixin, GatedRetrieveMixin, GatedViewSet
from api.fields import StrictSerializer
from api.host_resources import HostResourceMixin
from containers import quotas
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
            # Bytes on disk as the host last measured them (null: not yet); team volume_bytes.
            "size",
            "size_measured_at",
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


class VolumeViewSet(HostResourceMixin, GatedListMixin, GatedRetrieveMixin, GatedViewSet):
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
    create_serializer_class = VolumeCreateSerializer

    def enforce_quota(self, team) -> None:
        """A team's volume quota counts this one."""
        quotas.enforce(team, new_volumes=1)

    filterset_fields = ["team", "host", "state", "driver"]
    search_fields = ["name"]
    ordering_fields = ["name", "created_at"]

    def create_options(self, obj) -> dict:
        # Driver options that bind a host path are a bind mount in disguise: the gate checks.
        return {"options": obj.options}
