"""Compliance runs, their findings per object, the score per team, and exceptions."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class Severity(models.TextChoices):
    """How bad a failed check is; the order is the sort order of the dashboard."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}


class ComplianceRun(models.Model):
    """One pass of every check over every object (on demand, from the command or the schedule)."""

    class Trigger(models.TextChoices):
        MANUAL = "manual"
        SCHEDULE = "schedule"
        COMMAND = "command"

    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    objects_checked = models.IntegerField(default=0)
    evaluations = models.IntegerField(default=0)
    failed = models.IntegerField(default=0)
    excepted = models.IntegerField(default=0)
    duration_ms = models.IntegerField(default=0)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self):
        return f"compliance run {self.pk}"

    @property
    def score(self) -> float:
        """Share of evaluations that passed (excepted ones count as passed), 0..100."""
        if not self.evaluations:
            return 100.0
        return round(100.0 * (self.evaluations - self.failed) / self.evaluations, 1)


class Finding(models.Model):
    """One failed check on one object in one run (an excepted failure keeps its row, marked)."""

    run = models.ForeignKey(ComplianceRun, on_delete=models.CASCADE, related_name="findings")
    check_id = models.CharField(max_length=64)
    severity = models.CharField(max_length=8, choices=Severity.choices)
    object_type = models.CharField(max_length=16)  # container | image | host | token | site
    object_id = models.CharField(max_length=80)
    object_repr = models.CharField(max_length=200, blank=True)
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    host = models.ForeignKey(
        "hosts.Host", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    detail = models.CharField(max_length=500, blank=True)
    excepted = models.BooleanField(default=False)
    exception = models.ForeignKey(
        "compliance.ComplianceException",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    rbac_team_field = "team"
    rbac_host_field = "host"

    class Meta:
        ordering = ["check_id", "object_type", "object_id"]
        indexes = [
            models.Index(fields=["run", "severity"]),
            models.Index(fields=["run", "team"]),
            models.Index(fields=["object_type", "object_id"]),
        ]

    def __str__(self):
        return f"{self.check_id} on {self.object_type} {self.object_repr or self.object_id}"


class TeamScore(models.Model):
    """A run's counts for one team (team NULL: objects of no team: hosts, tokens, the site)."""

    run = models.ForeignKey(ComplianceRun, on_delete=models.CASCADE, related_name="scores")
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    evaluations = models.IntegerField(default=0)
    failed = models.IntegerField(default=0)
    excepted = models.IntegerField(default=0)
    by_severity = models.JSONField(default=dict)  # severity -> failed count

    rbac_team_field = "team"

    class Meta:
        ordering = ["run", "team"]
        constraints = [
            models.UniqueConstraint(fields=["run", "team"], name="compliance_one_score_per_team")
        ]

    def __str__(self):
        return f"score of {self.team or 'site'} in run {self.run_id}"

    @property
    def score(self) -> float:
        """Share of evaluations that passed, 0..100."""
        if not self.evaluations:
            return 100.0
        return round(100.0 * (self.evaluations - self.failed) / self.evaluations, 1)


class ComplianceException(models.Model):
    """A granted exception: check `check_id` may fail on one object until `expires_at`."""

    check_id = models.CharField(max_length=64)
    object_type = models.CharField(max_length=16)
    object_id = models.CharField(max_length=80)
    object_repr = models.CharField(max_length=200, blank=True)
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    host = models.ForeignKey(
        "hosts.Host", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    reason = models.CharField(max_length=500)
    expires_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    rbac_team_field = "team"
    rbac_host_field = "host"

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id", "check_id"])]

    def __str__(self):
        return f"exception for {self.check_id} on {self.object_type} {self.object_repr or self.object_id}"

    def active(self, now=None) -> bool:
        """In force: not revoked and not expired."""
        return self.revoked_at is None and self.expires_at > (now or timezone.now())
