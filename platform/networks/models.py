"""Bridge networks created by teams on a host."""

from django.db import models


class Network(models.Model):
    """A user-defined bridge network on one host, owned by a team."""

    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="networks")
    host = models.ForeignKey("hosts.Host", on_delete=models.PROTECT, related_name="networks")
    name = models.SlugField(max_length=64)
    subnet = models.CharField(max_length=43, blank=True)
    gateway = models.CharField(max_length=39, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, default="pending")
    created_at = models.DateTimeField(auto_now_add=True)

    rbac_team_field = "team"
    rbac_host_field = "host"

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["host", "name"], name="unique_network_per_host")
        ]

    def __str__(self):
        return self.name
