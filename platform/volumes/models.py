"""Named volumes created by teams on a host."""

from django.db import models


class Volume(models.Model):
    """A named volume on one host, owned by a team."""

    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="volumes")
    host = models.ForeignKey("hosts.Host", on_delete=models.PROTECT, related_name="volumes")
    name = models.CharField(max_length=128)
    driver = models.CharField(max_length=32, default="local")
    # Driver options; a `device=/path` option makes the volume a bind of a host path.
    options = models.JSONField(default=dict, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, default="pending")
    created_at = models.DateTimeField(auto_now_add=True)
    # Bytes on disk as the host's agent last measured them (agent/volume_sizes.py; None: not
    # measured, e.g. a bind of a host path); summed for the team's volume_bytes quota.
    size = models.BigIntegerField(null=True, blank=True)
    size_measured_at = models.DateTimeField(null=True, blank=True)

    rbac_team_field = "team"
    rbac_host_field = "host"

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["host", "name"], name="unique_volume_per_host")
        ]

    def __str__(self):
        return self.name
