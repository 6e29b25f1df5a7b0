"""Containers: what the database wants (desired state) and what the host reported (observed)."""

from django.conf import settings
from django.db import models

from containers.sorting import MAX_KEY_LENGTH, natural_sort_key


class Container(models.Model):
    """One container on one host, owned by a team; `spec` is runtime ContainerSpec.to_dict()."""

    class Desired(models.TextChoices):
        CREATED = "created"
        RUNNING = "running"
        PAUSED = "paused"
        STOPPED = "stopped"
        REMOVED = "removed"

    class Observed(models.TextChoices):
        PENDING = "pending"  # no agent has reported it yet
        CREATED = "created"
        RUNNING = "running"
        PAUSED = "paused"
        STOPPED = "stopped"
        REMOVED = "removed"
        GHOST = "ghost"  # the database believes it exists; the host does not know it
        ERROR = "error"
        UNKNOWN = "unknown"  # its host is down: the host's agent has not reported since

    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="containers")
    host = models.ForeignKey("hosts.Host", on_delete=models.PROTECT, related_name="containers")
    name = models.CharField(max_length=128)
    # natural_sort_key(name), set by save(): the dashboard's default order, served by an index.
    sort_name = models.CharField(max_length=MAX_KEY_LENGTH, default="", editable=False)
    image = models.CharField(max_length=255)  # the reference as requested; spec["image"]
    spec = models.JSONField()
    labels = models.JSONField(default=dict, blank=True)  # copy of spec["labels"], for filtering
    desired_state = models.CharField(
        max_length=16, choices=Desired.choices, default=Desired.CREATED
    )
    observed_state = models.CharField(
        max_length=16, choices=Observed.choices, default=Observed.PENDING
    )
    exit_code = models.IntegerField(null=True, blank=True)
    runtime_id = models.CharField(max_length=64, blank=True, db_index=True)
    pid = models.IntegerField(null=True, blank=True)
    network_info = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    observed_at = models.DateTimeField(null=True, blank=True)

    rbac_team_field = "team"
    rbac_host_field = "host"

    class Meta:
        ordering = ["name"]
        constraints = [
            # A removed container keeps its row for the audit trail but frees its name.
            models.UniqueConstraint(
                fields=["host", "name"],
                condition=~models.Q(observed_state="removed"),
                name="unique_container_name_per_host",
            )
        ]
        indexes = [
            models.Index(fields=["team", "observed_state"]),
            models.Index(fields=["host", "desired_state"]),
            models.Index(fields=["sort_name", "id"]),
            # The API's default order: its pages read by the index, not every row sorted.
            models.Index(fields=["name"]),
        ]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        self.sort_name = natural_sort_key(self.name)
        fields = kwargs.get("update_fields")
        if fields is not None and "name" in fields and "sort_name" not in fields:
            kwargs["update_fields"] = [*fields, "sort_name"]
        super().save(*args, **kwargs)


class ListVersion(models.Model):
    """One row whose token database triggers replace (SQLite) on every write to what the
    container list shows: containers, their health, their teams' and hosts' names
    (containers/list_version.py, issue 19)."""

    token = models.CharField(max_length=32, default="")
