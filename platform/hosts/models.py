"""A host runs one agent that consumes the Celery queue `host.<name>`."""

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

# Three missed agent heartbeats (15 s each by default).
HEARTBEAT_GRACE = timedelta(seconds=settings.BERTH_HEARTBEAT_GRACE_SECONDS)


class Host(models.Model):
    """A machine with a Berth agent; its state is derived from the agent's heartbeats."""

    class State(models.TextChoices):
        UP = "up"
        DOWN = "down"
        PENDING = "pending"  # enrolled by an admin; its agent has not joined yet

    name = models.SlugField(max_length=63, unique=True)
    queue = models.CharField(max_length=100, unique=True, blank=True)
    address = models.CharField(max_length=255, blank=True)
    state = models.CharField(max_length=8, choices=State.choices, default=State.DOWN)
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    info = models.JSONField(
        default=dict, blank=True
    )  # what the agent reports: kernel, cgroup version, ...
    created_at = models.DateTimeField(auto_now_add=True)
    # The agent's own Ed25519 public key (base64): it signs the messages the agent sends itself.
    public_key = models.CharField(max_length=64, blank=True)
    # Cordoned: no new containers are placed here; the ones it runs keep running.
    cordoned = models.BooleanField(default=False)
    # Removed: its key is revoked, nothing is sent to it, its messages are refused.
    revoked_at = models.DateTimeField(null=True, blank=True)

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


class JoinToken(models.Model):
    """A one-time secret that lets a new machine join as its host: only its hash is kept."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="join_tokens")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"join token of {self.host_id}"
