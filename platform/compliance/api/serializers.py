"""What the compliance API shows and accepts."""

from rest_framework import serializers

from api.fields import StrictCharField, StrictIntegerField, StrictSerializer
from compliance.models import (
    ComplianceException,
    ComplianceRun,
    Finding,
    ImageAdvisory,
    ImageInventory,
    OsvImport,
    Rollout,
    TeamScore,
)


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


class InventorySerializer(serializers.ModelSerializer):
    """An image inventory (packages only in the detail view)."""

    image_ref = serializers.CharField(source="image.__str__", read_only=True)

    class Meta:
        model = ImageInventory
        fields = [
            "id",
            "image",
            "image_ref",
            "image_digest",
            "team",
            "host",
            "status",
            "ecosystem",
            "distro",
            "package_count",
            "error",
            "scanned_at",
        ]
        read_only_fields = fields


class InventoryDetailSerializer(InventorySerializer):
    """An image inventory with its packages."""

    class Meta(InventorySerializer.Meta):
        fields = [*InventorySerializer.Meta.fields, "packages"]
        read_only_fields = fields


class ScanRequestSerializer(StrictSerializer):
    """POST body of a scan: one image, or every image of one host."""

    image = StrictIntegerField(required=False)
    host = StrictIntegerField(required=False)


class AdvisoryMatchSerializer(serializers.ModelSerializer):
    """An advisory that applies to an image's package."""

    osv_id = serializers.CharField(source="advisory.osv_id", read_only=True)
    summary = serializers.CharField(source="advisory.summary", read_only=True)
    aliases = serializers.JSONField(source="advisory.aliases", read_only=True)
    image = serializers.IntegerField(source="inventory.image_id", read_only=True)

    class Meta:
        model = ImageAdvisory
        fields = [
            "id",
            "osv_id",
            "summary",
            "aliases",
            "severity",
            "package",
            "installed",
            "fixed",
            "image",
            "team",
            "host",
        ]
        read_only_fields = fields


class OsvImportSerializer(serializers.ModelSerializer):
    """One OSV import with its counts."""

    class Meta:
        model = OsvImport
        fields = [
            "id",
            "filename",
            "imported_by",
            "created_at",
            "records",
            "imported",
            "skipped",
            "problems",
            "duration_ms",
        ]
        read_only_fields = fields


class OsvUploadSerializer(StrictSerializer):
    """Multipart upload of an OSV export zip."""

    file = serializers.FileField()


class RolloutSerializer(serializers.ModelSerializer):
    """A rolling update: its plan (one entry per container) and where it stands."""

    class Meta:
        model = Rollout
        fields = [
            "id",
            "host",
            "team",
            "old_image_id",
            "target_ref",
            "source",
            "new_image_id",
            "state",
            "plan",
            "error",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class RolloutRequestSerializer(StrictSerializer):
    """POST body of a plan: the old image, the target reference, where the new image comes from."""

    image = StrictIntegerField()
    target = StrictCharField(max_length=255, required=False, default="")
    source = StrictCharField(max_length=8, required=False, default="none")


class CheckRequestSerializer(StrictSerializer):
    """POST body of a registry check: the image, and optionally the reference and registry."""

    image = StrictIntegerField()
    ref = StrictCharField(max_length=255, required=False, default="")
    registry = StrictIntegerField(required=False)


class CheckSerializer(serializers.Serializer):
    """One compliance check as the catalogue lists it."""

    id = serializers.CharField()
    title = serializers.CharField()
    severity = serializers.CharField()
    target = serializers.CharField()
    cis = serializers.CharField()
    remediation = serializers.CharField()
