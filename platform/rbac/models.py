"""Roles (named sets of permissions) and bindings of a user or team to a role in a scope."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from rbac import catalog


def _validate_codes(value):
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise ValidationError("permissions must be a list of strings")
    bad = [c for c in value if not catalog.valid_code(c)]
    if bad:
        raise ValidationError(f"unknown permission(s): {', '.join(bad)}")


class Role(models.Model):
    """A named set of permissions, with the host paths its holders may bind-mount."""

    name = models.SlugField(max_length=64, unique=True)
    description = models.CharField(max_length=255, blank=True)
    permissions = models.JSONField(default=list, validators=[_validate_codes])
    # Host path prefixes a holder of container.bind_mount may bind; "/" means any path.
    bind_paths = models.JSONField(default=list, blank=True)
    # Limits applied to a container created under this role when the request gives none.
    default_limits = models.JSONField(default=dict, blank=True)
    # The most a container created under this role may ask for (containers/limits.py keys).
    max_limits = models.JSONField(default=dict, blank=True)
    builtin = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def expanded_permissions(self) -> frozenset[str]:
        """The concrete permission codes, wildcards expanded."""
        return catalog.expand(self.permissions)


class RoleBinding(models.Model):
    """Subject (a user or a team) holds a role globally, on one team's objects, or on one host."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="role_bindings",
    )
    team = models.ForeignKey(
        "accounts.Team",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="role_bindings",
    )
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="bindings")
    scope_team = models.ForeignKey(
        "accounts.Team",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="scoped_bindings",
    )
    scope_host = models.ForeignKey(
        "hosts.Host",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="scoped_bindings",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    # A binding scoped to a team or host is managed by whoever holds role.manage there.
    rbac_team_field = "scope_team"
    rbac_host_field = "scope_host"

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False) & Q(team__isnull=True))
                | (Q(user__isnull=True) & Q(team__isnull=False)),
                name="binding_one_subject",
            ),
            models.CheckConstraint(
                condition=Q(scope_team__isnull=True) | Q(scope_host__isnull=True),
                name="binding_one_scope",
            ),
        ]

    def __str__(self):
        return f"{self.subject_label} -> {self.role} @ {self.scope_label}"

    @property
    def scope_kind(self) -> str:
        """global, team or host."""
        if self.scope_team_id:
            return "team"
        if self.scope_host_id:
            return "host"
        return "global"

    @property
    def subject_label(self) -> str:
        """user:<name> or team:<name>."""
        return f"user:{self.user}" if self.user_id else f"team:{self.team}"

    @property
    def scope_label(self) -> str:
        """global, team:<name> or host:<name>."""
        if self.scope_team_id:
            return f"team:{self.scope_team}"
        if self.scope_host_id:
            return f"host:{self.scope_host}"
        return "global"


class AuthzGeneration(models.Model):
    """The generation of who may do what (rbac/generation.py): one row whose value changes, in
    the same transaction, with every change to users, tokens, teams, memberships, roles and
    bindings."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    value = models.CharField(max_length=32)

    class Meta:
        verbose_name = "authorization generation"
