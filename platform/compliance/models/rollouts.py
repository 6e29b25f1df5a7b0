"""Rolling updates: the containers of an old image recreated one at a time on a new one."""

from django.conf import settings
from django.db import models


class Rollout(models.Model):
    """A planned or running rolling update of the containers that use one image on one host."""

    class State(models.TextChoices):
        PLANNED = "planned"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"  # one container failed and was rolled back; the rest untouched
        UP_TO_DATE = "up_to_date"  # the new image is the old one: nothing to do

    class Source(models.TextChoices):
        NONE = "none"  # the target reference already names the new image on the host
        PULL = "pull"  # pull the target reference again first

    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="+")
    # The team of every container in the plan, or NULL when they belong to several teams.
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    old_image_row = models.ForeignKey(
        "images.Image", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    old_image_id = models.CharField(max_length=80)
    target_ref = models.CharField(max_length=255)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.NONE)
    new_image_id = models.CharField(max_length=80, blank=True)
    state = models.CharField(max_length=12, choices=State.choices, default=State.PLANNED)
    # [{container, name, state: pending|updated|rolled_back|blocked|skipped|failed, new_container,
    #   detail}]
    plan = models.JSONField(default=list)
    error = models.TextField(blank=True)
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
        return f"rollout {self.pk} of {self.target_ref}"
