"""What each image holds: its package inventory, read from its layers by its host's agent."""

from django.db import models
from django.db.models import Q


class ImageInventory(models.Model):
    """The packages of one image on one host (status unknown: the database was not readable)."""

    class Status(models.TextChoices):
        OK = "ok"
        UNKNOWN = "unknown"  # never "clean": we could not tell what it holds

    image = models.OneToOneField("images.Image", on_delete=models.CASCADE, related_name="inventory")
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="+")
    image_digest = models.CharField(max_length=80)  # the image id the packages were read from
    status = models.CharField(max_length=8, choices=Status.choices)
    ecosystem = models.CharField(max_length=32, blank=True)  # OSV: "Debian:12", "Alpine:v3.19"
    distro = models.CharField(max_length=120, blank=True)
    # [{name, version, source, source_version, arch, kind}]
    packages = models.JSONField(default=list, blank=True)
    package_count = models.IntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    scanned_at = models.DateTimeField()

    rbac_team_field = "team"
    rbac_host_field = "host"

    class Meta:
        ordering = ["host", "image__image_id"]

    def __str__(self):
        return f"inventory of {self.image}"

    @classmethod
    def rbac_public_q(cls) -> Q:
        """The inventories of public images are as public as the images."""
        return Q(team__isnull=True)
