"""Registries (with encrypted credentials) and the progress of image operations."""

from django.conf import settings
from django.db import models

from registries import crypto, refs


class Registry(models.Model):
    """A registry an admin configured: address, TLS switch and optional credentials."""

    name = models.SlugField(max_length=63, unique=True)
    # host[:port] as image references name it (e.g. registry.example.com:5000).
    address = models.CharField(max_length=255, unique=True)
    insecure = models.BooleanField(default=False)
    username = models.CharField(max_length=255, blank=True)
    # A Fernet token (see registries.crypto); the plaintext is never stored or returned.
    password_encrypted = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "registries"

    def __str__(self):
        return self.name

    def set_password(self, password: str) -> None:
        """Store `password` encrypted (empty clears it)."""
        self.password_encrypted = crypto.encrypt(password)

    def credentials(self) -> tuple[str, str] | None:
        """(username, password) for the registry client, or None for anonymous access."""
        if not self.username:
            return None
        return self.username, crypto.decrypt(self.password_encrypted)

    def owns(self, ref: str) -> bool:
        """Whether the image reference points at this registry."""
        return refs.registry_of(ref) == self.address


class OperationProgress(models.Model):
    """Live progress of a long image operation: per-layer download state and the build log."""

    operation = models.OneToOneField(
        "operations.Operation", primary_key=True, on_delete=models.CASCADE, related_name="progress"
    )
    # {layer id: {"status", "current", "total"}} in the order the layers were first reported.
    layers = models.JSONField(default=dict, blank=True)
    log = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"progress of operation {self.operation_id}"
