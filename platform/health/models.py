"""The latest health of a container, as its host agent found it (platform/agent/health.py)."""

from django.db import models

LOG_LENGTH = 5  # Docker keeps the last five results too


class ContainerHealth(models.Model):
    """A container's health: starting, healthy or unhealthy, with its last results."""

    class Status(models.TextChoices):
        STARTING = "starting"
        HEALTHY = "healthy"
        UNHEALTHY = "unhealthy"

    container = models.OneToOneField(
        "containers.Container", on_delete=models.CASCADE, related_name="health"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.STARTING)
    failing_streak = models.PositiveIntegerField(default=0)
    # [{"start", "end", "exit_code", "output"}], oldest first, at most LOG_LENGTH.
    log = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.container_id}: {self.status}"
