"""An Operation is the durable truth of one change sent to a host; the agent reloads it by id."""

from django.conf import settings
from django.db import models


class Operation(models.Model):
    """One unit of work for a host agent: pending -> running -> succeeded | failed."""

    class State(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    DONE = (State.SUCCEEDED, State.FAILED)

    kind = models.CharField(max_length=48)  # e.g. container.start, image.import
    target_type = models.CharField(max_length=32)  # container, image, network, volume, host
    target_id = models.CharField(max_length=64, blank=True)
    host = models.ForeignKey("hosts.Host", on_delete=models.PROTECT, related_name="operations")
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="operations"
    )
    params = models.JSONField(default=dict, blank=True)
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.PENDING, db_index=True
    )
    error = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    task_id = models.CharField(max_length=64, blank=True, db_index=True)
    request_id = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    rbac_team_field = "team"
    rbac_host_field = "host"

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.kind} {self.target_type}:{self.target_id} ({self.state})"

    @property
    def is_done(self) -> bool:
        """Succeeded or failed."""
        return self.state in self.DONE
