"""One row per backup or restore run: its state, size, duration and where its set is."""

from django.conf import settings
from django.db import models


class BackupRun(models.Model):
    """A backup (or restore) run: running -> succeeded | failed, with what it produced."""

    class Kind(models.TextChoices):
        BACKUP = "backup"
        RESTORE = "restore"

    class Trigger(models.TextChoices):
        COMMAND = "command"
        SCHEDULE = "schedule"
        API = "api"
        DASHBOARD = "dashboard"

    class State(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.BACKUP)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.COMMAND)
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING)
    set_id = models.CharField(max_length=64, blank=True, db_index=True)
    path = models.CharField(max_length=1024, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    duration_seconds = models.FloatField(default=0)
    error = models.TextField(blank=True)
    summary = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self):
        return f"{self.kind} {self.set_id or self.pk} ({self.state})"
