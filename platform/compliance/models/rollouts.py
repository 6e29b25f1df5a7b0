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


class RolloutSchedule(models.Model):
    """A team's opt-in to scheduled rolling updates: the hours they may run, and as whom."""

    team = models.OneToOneField("accounts.Team", on_delete=models.CASCADE, related_name="+")
    enabled = models.BooleanField(default=True)
    # The window, in whole hours UTC: start <= hour < end (it wraps past midnight when
    # end < start; start == end is the whole day).
    window_start = models.PositiveSmallIntegerField(default=2)
    window_end = models.PositiveSmallIntegerField(default=5)
    # Also ask registries for newer digests of pulled tags (and pull them); without it only
    # images rebuilt on the host (a tag that names a newer image there) are rolled out.
    pull = models.BooleanField(default=True)
    # Scheduled rollouts act as the user who opted in: the gate decides every step with their
    # permissions at that time, so a user who lost container.recreate stops them.
    acting_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_result = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    rbac_team_field = "team"

    class Meta:
        ordering = ["team__name"]

    def __str__(self):
        return f"rollout schedule of {self.team}"

    def in_window(self, hour: int) -> bool:
        """Whether `hour` (0-23, UTC) is inside the window."""
        start, end = self.window_start, self.window_end
        if start == end:
            return True
        return start <= hour < end if start < end else hour >= start or hour < end
