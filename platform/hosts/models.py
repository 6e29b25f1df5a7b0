"""A host runs one agent that consumes the Celery queue `host.<name>`."""

from datetime import timedelta

from django.db import models
from django.db.models import Q
from django.utils import timezone

HEARTBEAT_GRACE = timedelta(seconds=45)  # three missed 15 s agent heartbeats


class Host(models.Model):
    """A machine with a Berth agent; its state is derived from the agent's heartbeats."""

    class State(models.TextChoices):
        UP = "up"
        DOWN = "down"

    name = models.SlugField(max_length=63, unique=True)
    queue = models.CharField(max_length=100, unique=True, blank=True)
    address = models.CharField(max_length=255, blank=True)
    state = models.CharField(max_length=8, choices=State.choices, default=State.DOWN)
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    info = models.JSONField(
        default=dict, blank=True
    )  # what the agent reports: kernel, cgroup version, ...
    created_at = models.DateTimeField(auto_now_add=True)

    rbac_host_field = "id"

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @classmethod
    def rbac_public_q(cls) -> Q:
        """Anyone who may view hosts somewhere sees every host (to pick one for a container)."""
        return Q()

    def save(self, *args, **kwargs):
        if not self.queue:
            self.queue = f"host.{self.name}"
        super().save(*args, **kwargs)

    @property
    def is_alive(self) -> bool:
        """A heartbeat arrived within the grace period."""
        return bool(self.last_heartbeat and timezone.now() - self.last_heartbeat < HEARTBEAT_GRACE)
