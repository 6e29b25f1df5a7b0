"""Strict serializer building blocks: unknown fields refused, booleans only true/false."""

from django.conf import settings
from rest_framework import serializers


class StrictBooleanField(serializers.BooleanField):
    """Accepts only JSON true/false (not "yes", 1 or "on")."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictIntegerField(serializers.IntegerField):
    """Accepts only JSON integers (not "12" or true)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """Accepts only JSON strings (not numbers coerced to text)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def string_list(**kwargs):
    """A list of strings."""
    return serializers.ListField(
        child=StrictCharField(allow_blank=True, trim_whitespace=False), **kwargs
    )


class StrictSerializer(serializers.Serializer):
    """Refuses unknown fields (fail closed) and fills every missing nested object with defaults."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": [f"expected an object, got {type(data).__name__}"]}
            )
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["unknown field"] for name in unknown})
        value = super().to_internal_value(data)
        for name, field in self.fields.items():
            if name in value or field.read_only:
                continue
            if isinstance(field, serializers.ListSerializer):
                value[name] = []
            elif isinstance(field, StrictSerializer):
                value[name] = field.to_internal_value({})
        return value


def check_upload_size(upload):
    """Refuse an uploaded file larger than BERTH_MAX_UPLOAD_BYTES (before it is stored)."""
    limit = settings.BERTH_MAX_UPLOAD_BYTES
    if upload.size > limit:
        raise serializers.ValidationError(
            f"the upload is too large ({upload.size} bytes; at most {limit} bytes)"
        )
    return upload
