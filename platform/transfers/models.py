"""One archive handed from one host's agent to another's through the control plane."""

import uuid

from django.db import models


class Transfer(models.Model):
    """An archive that `source` uploads once and `target` downloads (e.g. a named volume)."""

    class State(models.TextChoices):
        WAITING = "waiting"  # nothing uploaded yet
        STORED = "stored"  # uploaded whole, checksum known
        DONE = "done"  # downloaded by the target; the file is gone

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    source = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="+")
    target = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="+")
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, default="volume")
    name = models.CharField(max_length=128)  # what is moved: the volume's name
    state = models.CharField(max_length=8, choices=State.choices, default=State.WAITING)
    size = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    rbac_team_field = "team"

    def __str__(self):
        return f"{self.kind} {self.name}: {self.source_id} -> {self.target_id}"
