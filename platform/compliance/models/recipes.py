"""Build recipes: how Berth built an image, kept so that it can build it again on a newer base."""

from django.conf import settings
from django.db import models


class BuildRecipe(models.Model):
    """One build of an image by Berth: its context (a copy is kept by digest), Dockerfile,
    build arguments and the base images (FROM) with their digests at build time."""

    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="+")
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    image_row = models.ForeignKey(
        "images.Image", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    image_id = models.CharField(max_length=80)
    tag = models.CharField(max_length=255, blank=True)
    dockerfile = models.CharField(max_length=255, default="Dockerfile")
    build_args = models.JSONField(default=dict, blank=True)
    context_digest = models.CharField(max_length=80)  # sha256:<hex> of the context tar
    # [{"ref": FROM name, "image_id": ..., "digest": manifest digest}] in build order.
    bases = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # The last base check: when, whether a base has a newer digest, and per base what was seen.
    checked_at = models.DateTimeField(null=True, blank=True)
    base_newer = models.BooleanField(default=False)
    check_result = models.JSONField(default=dict, blank=True)

    rbac_team_field = "team"
    rbac_host_field = "host"

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"recipe of {self.tag or self.image_id[:19]}"
