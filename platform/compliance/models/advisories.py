"""Known vulnerabilities imported offline from OSV exports, and their matches on images."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class OsvImport(models.Model):
    """One OSV archive imported: how many records went in and how many were skipped (and why)."""

    filename = models.CharField(max_length=255)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    records = models.IntegerField(default=0)
    imported = models.IntegerField(default=0)
    skipped = models.IntegerField(default=0)
    problems = models.JSONField(default=list, blank=True)  # the first skipped records and why
    duration_ms = models.IntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"OSV import {self.pk} ({self.filename})"


class Advisory(models.Model):
    """One OSV record (a DSA, DLA, CVE for a distribution...)."""

    osv_id = models.CharField(max_length=128, unique=True)
    summary = models.CharField(max_length=500, blank=True)
    aliases = models.JSONField(default=list, blank=True)
    severity = models.CharField(max_length=8, default="unknown")
    modified = models.DateTimeField(null=True, blank=True)
    imported_in = models.ForeignKey(
        OsvImport, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["osv_id"]

    def __str__(self):
        return self.osv_id


class AffectedPackage(models.Model):
    """A package an advisory affects in one ecosystem, with its ranges and listed versions."""

    advisory = models.ForeignKey(Advisory, on_delete=models.CASCADE, related_name="affected")
    ecosystem = models.CharField(max_length=64)  # as OSV writes it: "Debian:12", "Alpine:v3.19"
    name = models.CharField(max_length=200)  # the source package (Debian) or origin (Alpine)
    # [[introduced, fixed or "", last_affected or ""], ...] in the ecosystem's version order
    ranges = models.JSONField(default=list, blank=True)
    versions = models.JSONField(default=list, blank=True)

    class Meta:
        indexes = [models.Index(fields=["ecosystem", "name"])]

    def __str__(self):
        return f"{self.advisory} on {self.ecosystem}/{self.name}"


class ImageAdvisory(models.Model):
    """An advisory that applies to a package installed in an image."""

    inventory = models.ForeignKey(
        "compliance.ImageInventory", on_delete=models.CASCADE, related_name="advisories"
    )
    advisory = models.ForeignKey(Advisory, on_delete=models.CASCADE, related_name="+")
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="+")
    package = models.CharField(max_length=200)
    installed = models.CharField(max_length=200)
    fixed = models.CharField(max_length=200, blank=True)  # "" when no fix is known
    severity = models.CharField(max_length=8, default="unknown")

    rbac_team_field = "team"
    rbac_host_field = "host"

    class Meta:
        ordering = ["inventory", "package", "advisory"]
        indexes = [models.Index(fields=["inventory", "severity"])]

    def __str__(self):
        return f"{self.advisory} in {self.package} {self.installed}"

    @classmethod
    def rbac_public_q(cls) -> Q:
        """Matches on public images are as public as the images."""
        return Q(team__isnull=True)
