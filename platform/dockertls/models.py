"""The client certificates Berth's Docker API CA issued: each authenticates one user."""

from django.conf import settings
from django.db import models


class ClientCertificate(models.Model):
    """A TLS client certificate for the Docker API; its serial maps a handshake to a user."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="docker_certificates"
    )
    # Lowercase hex of the certificate's serial number (random 159 bits, unique per CA).
    serial = models.CharField(max_length=64, unique=True)
    common_name = models.CharField(max_length=200)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the DER certificate")
    issued_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-issued_at"]

    def __str__(self) -> str:
        return f"{self.common_name} ({self.serial[:12]})"
