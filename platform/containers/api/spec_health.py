"""The web's mirror of runtime/spec_health.py: a container's health check, as Docker's
HEALTHCHECK (test ["CMD", ...] / ["CMD-SHELL", "text"] / ["NONE"], times in seconds)."""

from rest_framework import serializers

from api.fields import StrictIntegerField, StrictSerializer, string_list

TEST_KINDS = ("CMD", "CMD-SHELL", "NONE")
MAX_SECONDS = 24 * 3600.0
MAX_TEST_BYTES = 4096


class SecondsField(serializers.FloatField):
    """A JSON number of seconds (not a string, not true)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class HealthCheckSerializer(StrictSerializer):
    """What the host runs in the container to decide it is healthy, and how often."""

    test = string_list(min_length=1)
    interval = SecondsField(required=False, default=30.0, min_value=1.0, max_value=MAX_SECONDS)
    timeout = SecondsField(required=False, default=30.0, min_value=1.0, max_value=MAX_SECONDS)
    retries = StrictIntegerField(required=False, default=3, min_value=1, max_value=100)
    start_period = SecondsField(required=False, default=0.0, min_value=0.0, max_value=MAX_SECONDS)

    def validate_test(self, value):
        kind = value[0]
        if kind not in TEST_KINDS:
            raise serializers.ValidationError(
                f"the test must start with one of {', '.join(TEST_KINDS)}"
            )
        if kind == "NONE" and len(value) != 1:
            raise serializers.ValidationError('["NONE"] takes nothing else')
        if kind == "CMD-SHELL" and (len(value) != 2 or not value[1].strip()):
            raise serializers.ValidationError('["CMD-SHELL", "command"] needs one command')
        if kind == "CMD" and len(value) < 2:
            raise serializers.ValidationError('["CMD", program, ...] needs a program')
        if sum(len(t.encode()) for t in value) > MAX_TEST_BYTES or any("\0" in t for t in value):
            raise serializers.ValidationError(f"at most {MAX_TEST_BYTES} bytes, no NUL")
        return value
