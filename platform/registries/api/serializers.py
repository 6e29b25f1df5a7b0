"""Serializers of registries and of the image actions' request bodies (unknown fields refused)."""

import json

from rest_framework import serializers

from api.fields import StrictBooleanField, StrictCharField, StrictSerializer, check_upload_size
from operations.api.serializers import OperationSerializer
from registries import refs
from registries.models import Registry


class RegistrySerializer(serializers.ModelSerializer):
    """A registry as admins manage it; the password is write-only and stored encrypted."""

    password = serializers.CharField(
        write_only=True, required=False, allow_blank=True, trim_whitespace=False, max_length=1024
    )
    has_password = serializers.SerializerMethodField()
    insecure = StrictBooleanField(required=False)

    class Meta:
        model = Registry
        fields = [
            "id",
            "name",
            "address",
            "insecure",
            "username",
            "password",
            "has_password",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "has_password", "created_at", "updated_at"]

    def get_has_password(self, obj) -> bool:
        """Whether a password is stored (never the password itself)."""
        return bool(obj.password_encrypted)

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": [f"expected an object, got {type(data).__name__}"]}
            )
        writable = {name for name, field in self.fields.items() if not field.read_only}
        unknown = sorted(set(data) - writable)
        if unknown:
            raise serializers.ValidationError({name: ["unknown field"] for name in unknown})
        return super().to_internal_value(data)

    def validate_address(self, value):
        if not refs.ADDRESS_RE.match(value):
            raise serializers.ValidationError("give host or host:port, without a scheme or path")
        return value.lower()

    def create(self, validated_data):
        password = validated_data.pop("password", "")
        registry = Registry(**validated_data)
        registry.set_password(password)
        registry.created_by = self.context["request"].user
        registry.save()
        return registry

    def update(self, instance, validated_data):
        if "password" in validated_data:
            instance.set_password(validated_data.pop("password"))
        for name, value in validated_data.items():
            setattr(instance, name, value)
        instance.save()
        return instance


def _ref_field(**kwargs):
    return serializers.RegexField(refs.REF_RE, max_length=512, **kwargs)


class PullSerializer(StrictSerializer):
    """Pull `ref` onto a host, optionally with a configured registry's credentials."""

    ref = _ref_field()
    registry = StrictCharField(required=False, help_text="name or id of a configured registry")
    host = StrictCharField(required=False)
    team = StrictCharField(
        required=False, help_text="owner team; empty for a public image (global grant only)"
    )


class PushSerializer(StrictSerializer):
    """Push an image under `target` (default: its first tag)."""

    target = _ref_field(required=False)
    registry = StrictCharField(required=False)


class SearchSerializer(StrictSerializer):
    """Search a registry's catalog (or Docker Hub when no registry is named)."""

    term = StrictCharField(required=False, allow_blank=True, default="", max_length=200)
    registry = StrictCharField(required=False)
    tags = StrictBooleanField(required=False, default=False)
    host = StrictCharField(required=False)


class CommitSerializer(StrictSerializer):
    """`docker commit`: a container's changes as a new image named `ref`."""

    container = StrictCharField(help_text="id of a container the caller may see")
    ref = _ref_field()
    message = StrictCharField(required=False, allow_blank=True, default="", max_length=500)
    pause = StrictBooleanField(required=False, default=True)


class PruneSerializer(StrictSerializer):
    """Remove dangling images of a host (every unused one with `all`)."""

    host = StrictCharField(required=False)
    all = StrictBooleanField(required=False, default=False)


class BuildSerializer(StrictSerializer):
    """Multipart: a tar of the build context, the Dockerfile's path in it, the tag."""

    context = serializers.FileField(validators=[check_upload_size])
    dockerfile = serializers.CharField(required=False, default="Dockerfile", max_length=255)
    tag = _ref_field(required=False)
    build_args = serializers.CharField(
        required=False, default="{}", help_text='a JSON object, e.g. {"VERSION": "1"}'
    )
    no_cache = serializers.BooleanField(required=False, default=False)
    host = serializers.CharField(required=False)
    team = serializers.CharField(required=False)

    def validate_dockerfile(self, value):
        if value.startswith("/") or ".." in value.split("/"):
            raise serializers.ValidationError("must be a relative path inside the context")
        return value

    def validate_build_args(self, value):
        try:
            args = json.loads(value or "{}")
        except ValueError:
            raise serializers.ValidationError("must be a JSON object") from None
        if not isinstance(args, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in args.items()
        ):
            raise serializers.ValidationError("must be a JSON object of strings")
        return args


class OperationAcceptedSerializer(serializers.Serializer):
    """The answer of every image action: the Operation and where its progress is read."""

    operation = OperationSerializer(read_only=True)
    progress = serializers.CharField(read_only=True)


class ProgressSerializer(serializers.Serializer):
    """Live progress of an Operation: layers with percent, the log from `since`, next offset."""

    operation = serializers.IntegerField(read_only=True)
    kind = serializers.CharField(read_only=True)
    state = serializers.CharField(read_only=True)
    status = serializers.CharField(read_only=True, help_text="the latest image-wide step")
    error = serializers.CharField(read_only=True)
    layers = serializers.ListField(child=serializers.DictField(), read_only=True)
    log = serializers.CharField(read_only=True)
    next = serializers.IntegerField(read_only=True)
    result = serializers.DictField(read_only=True)
