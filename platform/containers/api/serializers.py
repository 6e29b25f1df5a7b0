"""Serializers of the container API."""

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
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
from health.serializers import ContainerHealthSerializer
from operations.api.serializers import OperationSerializer


class ContainerSerializer(serializers.ModelSerializer):
    """A container as the API shows it (changes go through actions, never through this)."""

    team_name = serializers.CharField(source="team.name", read_only=True)
    host_name = serializers.CharField(source="host.name", read_only=True)
    # Null until the host has run the container's health check (or when it has none).
    health = ContainerHealthSerializer(read_only=True, allow_null=True)

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
            "health",
        ]
        read_only_fields = fields


# The API's date-time format (settings), for list rows written out by hand.
_DATETIME = serializers.DateTimeField()


def _when_drf(value):
    """A date-time as DRF's DateTimeField writes it."""
    return None if value is None else _DATETIME.to_representation(value)


def _when_utc(value):
    """The same as _when_drf when the API's time zone is UTC, without DRF's per-value time
    zone lookups (the database hands back UTC date-times)."""
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else _DATETIME.to_representation(value)


class ContainerListSerializer(ContainerSerializer):
    """A row of the container list: the summary, without the spec (see the detail view)."""

    class Meta(ContainerSerializer.Meta):
        fields = [f for f in ContainerSerializer.Meta.fields if f != "spec"]
        read_only_fields = fields

    # The list reads these columns with values_list() (no model instance per row, no team
    # and host objects): a page of 500 rows costs a fraction of building 1,500 instances.
    COLUMNS = (
        "id",
        "name",
        "team_id",
        "team__name",
        "host_id",
        "host__name",
        "image",
        "labels",
        "desired_state",
        "observed_state",
        "exit_code",
        "runtime_id",
        "pid",
        "network_info",
        "error",
        "created_at",
        "updated_at",
        "observed_at",
        # The container's health (a one-to-one row; null without one), in the same query.
        "health__status",
        "health__failing_streak",
        "health__log",
        "health__updated_at",
    )

    @classmethod
    def rows(cls, tuples) -> list[dict]:
        """List rows from tuples of COLUMNS (the same keys and formats as the fields)."""
        when = _when_utc if settings.TIME_ZONE == "UTC" else _when_drf
        return [cls.row(values, when) for values in tuples]

    @staticmethod
    def list_row(values) -> dict:
        """One list row as rows() makes it (listing.ROW_CACHE keeps these by their values)."""
        when = _when_utc if settings.TIME_ZONE == "UTC" else _when_drf
        return ContainerListSerializer.row(values, when)

    @staticmethod
    def row(values, when=_when_drf) -> dict:
        """One list row from a tuple of COLUMNS."""
        (
            pk,
            name,
            team_id,
            team_name,
            host_id,
            host_name,
            image,
            labels,
            desired,
            observed,
            exit_code,
            runtime_id,
            pid,
            network_info,
            error,
            created_at,
            updated_at,
            observed_at,
            health,
            failing_streak,
            health_log,
            checked_at,
        ) = values
        return {
            "id": pk,
            "name": name,
            "team": team_id,
            "team_name": team_name,
            "host": host_id,
            "host_name": host_name,
            "image": image,
            "labels": labels,
            "desired_state": desired,
            "observed_state": observed,
            "exit_code": exit_code,
            "runtime_id": runtime_id,
            "pid": pid,
            "network_info": network_info,
            "error": error,
            "created_at": when(created_at),
            "updated_at": when(updated_at),
            "observed_at": when(observed_at),
            "health": None
            if health is None
            else {
                "status": health,
                "failing_streak": failing_streak,
                "log": health_log,
                "updated_at": when(checked_at),
            },
        }

    def to_representation(self, c):
        return self.row(tuple(_column(c, name) for name in self.COLUMNS))

    @classmethod
    def detail_row(cls, values) -> dict:
        """ContainerSerializer's dict from a tuple of COLUMNS followed by the spec (the same
        keys in the same order)."""
        when = _when_utc if settings.TIME_ZONE == "UTC" else _when_drf
        summary = cls.row(values[:-1], when)
        body = {}
        for key, value in summary.items():
            if key == "created_at":
                body["spec"] = values[-1]
            body[key] = value
        return body


def _column(c, name: str):
    """The value of one of ContainerListSerializer.COLUMNS on a Container instance."""
    value = c
    for part in name.split("__"):
        try:
            value = getattr(value, part)
        except ObjectDoesNotExist:  # no health row yet
            return None
        if value is None:
            return None
    return value


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
