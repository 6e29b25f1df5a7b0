"""Images present (or being imported) on a host."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class Image(models.Model):
    """An image on one host: id is the runtime's "sha256:<config digest>"."""

    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="images")
    # Owner team; NULL for a public image every team may use.
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="images"
    )
    image_id = models.CharField(max_length=80)
    repo_tags = models.JSONField(default=list, blank=True)
    size = models.BigIntegerField(default=0)
    config = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(null=True, blank=True)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    rbac_team_field = "team"
    rbac_host_field = "host"

    class Meta:
        ordering = ["host", "image_id"]
        constraints = [
            models.UniqueConstraint(fields=["host", "image_id"], name="unique_image_per_host")
        ]

    def __str__(self):
        return self.repo_tags[0] if self.repo_tags else self.image_id[:19]

    @classmethod
    def rbac_public_q(cls) -> Q:
        """Images without a team are readable by anyone who may view images somewhere."""
        return Q(team__isnull=True)
