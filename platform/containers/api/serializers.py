"""Serializers of the container API."""

from rest_framework import serializers

from api.fields import (
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    string_list,
)
from containers.api.spec import NAME_RE, ContainerSpecSerializer
from containers.models import Container
from containers.references import FULL_ID_RE
from operations.api.serializers import OperationSerializer


class ContainerSerializer(serializers.ModelSerializer):
    """A container as the API shows it (changes go through actions, never through this)."""

    team_name = serializers.CharField(source="team.name", read_only=True)
    host_name = serializers.CharField(source="host.name", read_only=True)

    class Meta:
        model = Container
        fields = [
            "id",
            "name",
            "team",
            "team_name",
            "host",
            "host_name",
            "image",
            "labels",
            "desired_state",
            "observed_state",
            "exit_code",
            "runtime_id",
            "pid",
            "network_info",
            "error",
            "spec",
            "created_at",
            "updated_at",
            "observed_at",
        ]
        read_only_fields = fields


# The API's date-time format (settings), for list rows written out by hand.
_DATETIME = serializers.DateTimeField()


class ContainerListSerializer(ContainerSerializer):
    """A row of the container list: the summary, without the spec (see the detail view)."""

    class Meta(ContainerSerializer.Meta):
        fields = [f for f in ContainerSerializer.Meta.fields if f != "spec"]
        read_only_fields = fields

    def to_representation(self, c):
        # The same keys and formats as the fields above, without a field object per value:
        # a page of 500 rows costs a fifth of the generic path.
        when = _DATETIME.to_representation
        return {
            "id": c.pk,
            "name": c.name,
            "team": c.team_id,
            "team_name": c.team.name,
            "host": c.host_id,
            "host_name": c.host.name,
            "image": c.image,
            "labels": c.labels,
            "desired_state": c.desired_state,
            "observed_state": c.observed_state,
            "exit_code": c.exit_code,
            "runtime_id": c.runtime_id,
            "pid": c.pid,
            "network_info": c.network_info,
            "error": c.error,
            "created_at": when(c.created_at) if c.created_at else None,
            "updated_at": when(c.updated_at) if c.updated_at else None,
            "observed_at": when(c.observed_at) if c.observed_at else None,
        }


class ContainerAnswerSerializer(serializers.Serializer):
    """What create and rename answer: the Operation, and the container as it is after it
    (200 once a ?wait= saw the operation finish, 202 while it is queued)."""

    operation = OperationSerializer()
    container = ContainerSerializer()


class ContainerCreateSerializer(StrictSerializer):
    """POST body: which team and host, the spec, and whether to start it right away."""

    team = serializers.CharField(
        required=False, help_text="team id or name; default: your only team"
    )
    host = serializers.CharField(
        required=False,
        help_text="host id or name; default: one chosen by placement (most free memory per container among the hosts you may use that are up, not cordoned)",
    )
    start = StrictBooleanField(required=False, default=True)
    spec = ContainerSpecSerializer()


class RenameSerializer(StrictSerializer):
    """New name of a container."""

    name = serializers.RegexField(NAME_RE)

    def validate_name(self, value):
        if FULL_ID_RE.match(value):
            raise serializers.ValidationError("a container name cannot look like a full id")
        return value


class StopSerializer(StrictSerializer):
    """Stop/restart/kill options."""

    timeout = StrictIntegerField(required=False, min_value=0, max_value=3600)
    signal = StrictCharField(required=False)
    force = StrictBooleanField(required=False)


class ExecSerializer(StrictSerializer):
    """A non-interactive command to run in the container."""

    command = string_list(min_length=1)
    user = serializers.RegexField(
        r"^[a-zA-Z0-9_.-]+(:[a-zA-Z0-9_.-]+)?$", required=False, default=None, allow_null=True
    )
    env = string_list(required=False, default=list)
    workdir = StrictCharField(required=False, default=None, allow_null=True)
    timeout = StrictIntegerField(required=False, default=10, min_value=1, max_value=60)


class LogsQuerySerializer(StrictSerializer):
    """?tail=N&since=ISO&timestamps=1."""

    tail = serializers.IntegerField(required=False, min_value=0, max_value=10000, default=200)
    since = serializers.DateTimeField(required=False, default=None)
    timestamps = serializers.BooleanField(required=False, default=False)
