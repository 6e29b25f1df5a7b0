"""Users, teams and hashed API tokens."""

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models, transaction
from django.utils import timezone

TOKEN_PREFIX = "berth_"


class User(AbstractUser):
    """A person or a robot account; what it may do comes from role bindings, not from this row."""

    class Meta:
        ordering = ["username"]


class Team(models.Model):
    """A group of users that owns containers, networks and volumes."""

    name = models.SlugField(max_length=64, unique=True)
    description = models.CharField(max_length=255, blank=True)
    members = models.ManyToManyField(User, through="Membership", related_name="teams")
    # What the team's containers may use together (containers/quotas.py keys); set by admins.
    quotas = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    # The gate finds a team's scope in its own primary key.
    rbac_team_field = "id"

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Membership(models.Model):
    """One user in one team."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="unique_membership")]

    def __str__(self):
        return f"{self.user} in {self.team}"


def hash_token(secret: str) -> str:
    """The stored form of a token: sha256 of the secret, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    """Token lookups."""

    def usable(self):
        """Tokens neither revoked nor expired."""
        return self.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())

    def update(self, **kwargs):
        """As QuerySet.update; any change but the last use (a revocation) also changes the
        generation cached token lookups depend on (rbac/generation.py), in the same
        transaction: no signal reports it, and no request between the two may still find the
        token in a cache."""
        if not set(kwargs) - {"last_used_at"}:
            return super().update(**kwargs)
        from rbac.generation import bump

        with transaction.atomic(using=self.db):
            done = super().update(**kwargs)
            bump()
        return done


class ApiToken(models.Model):
    """A per-client API token: only its hash is stored; the secret is shown once at creation."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=64)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=16, editable=False)
    read_only = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    # The gate shows a token only to the user it belongs to.
    rbac_owner_field = "user"

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="unique_token_name")]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, user, name, *, days=None, read_only=False):
        """Create a token; returns (token, secret). The secret is never stored."""
        days = days or settings.BERTH_TOKEN_DEFAULT_DAYS
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user,
            name=name,
            key_hash=hash_token(secret),
            prefix=secret[: len(TOKEN_PREFIX) + 6],
            read_only=read_only,
            expires_at=timezone.now() + timedelta(days=days),
        )
        return token, secret

    @property
    def is_usable(self) -> bool:
        """Neither revoked nor expired."""
        return self.revoked_at is None and self.expires_at > timezone.now()
