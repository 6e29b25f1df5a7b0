"""What the compliance API shows and accepts."""

from rest_framework import serializers

from api.fields import StrictCharField, StrictSerializer
from compliance.models import ComplianceException, ComplianceRun, Finding, TeamScore


class RunSerializer(serializers.ModelSerializer):
    """A compliance run with its totals."""

    score = serializers.FloatField(read_only=True)

    class Meta:
        model = ComplianceRun
        fields = [
            "id",
            "trigger",
            "started_by",
            "started_at",
            "finished_at",
            "objects_checked",
            "evaluations",
            "failed",
            "excepted",
            "score",
            "duration_ms",
        ]
        read_only_fields = fields


class FindingSerializer(serializers.ModelSerializer):
    """One failed check on one object."""

    team_name = serializers.CharField(source="team.name", read_only=True, default="")
    host_name = serializers.CharField(source="host.name", read_only=True, default="")

    class Meta:
        model = Finding
        fields = [
            "id",
            "run",
            "check_id",
            "severity",
            "object_type",
            "object_id",
            "object_repr",
            "team",
            "team_name",
            "host",
            "host_name",
            "detail",
            "excepted",
            "exception",
        ]
        read_only_fields = fields


class ScoreSerializer(serializers.ModelSerializer):
    """A team's counts and score in one run."""

    team_name = serializers.CharField(source="team.name", read_only=True, default="")
    score = serializers.FloatField(read_only=True)

    class Meta:
        model = TeamScore
        fields = [
            "run",
            "team",
            "team_name",
            "evaluations",
            "failed",
            "excepted",
            "by_severity",
            "score",
        ]
        read_only_fields = fields


class ExceptionSerializer(serializers.ModelSerializer):
    """An exception as the API shows it."""

    active = serializers.SerializerMethodField()

    class Meta:
        model = ComplianceException
        fields = [
            "id",
            "check_id",
            "object_type",
            "object_id",
            "object_repr",
            "team",
            "host",
            "reason",
            "expires_at",
            "created_by",
            "created_at",
            "revoked_at",
            "active",
        ]
        read_only_fields = fields

    def get_active(self, obj) -> bool:
        return obj.active()


class ExceptionRequestSerializer(StrictSerializer):
    """POST body of a new exception: all fields required."""

    check_id = StrictCharField(max_length=64)
    object_type = StrictCharField(max_length=16)
    object_id = StrictCharField(max_length=80)
    reason = StrictCharField(max_length=500, allow_blank=True, required=False, default="")
    expires_at = serializers.DateTimeField(required=False, default=None, allow_null=True)
