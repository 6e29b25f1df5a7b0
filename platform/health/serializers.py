"""A container's health as the API shows it."""

from rest_framework import serializers

from health.models import ContainerHealth


class ContainerHealthSerializer(serializers.ModelSerializer):
    """Status (starting, healthy, unhealthy), failures in a row, and the last results."""

    class Meta:
        model = ContainerHealth
        fields = ["status", "failing_streak", "log", "updated_at"]
        read_only_fields = fields
