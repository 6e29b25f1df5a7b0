"""Group mappings, the directory identity of a user, and what sign-in gave each user."""

from django.conf import settings
from django.db import models

LDAP, OIDC = "ldap", "oidc"
SOURCES = [(LDAP, "LDAP"), (OIDC, "OIDC")]


class GroupMapping(models.Model):
    """Members of a directory group (LDAP group DN or cn; OIDC claim value) join a team, with an
    optional role bound on that team, or (no team) hold a role globally; applied at every
    sign-in."""

    source = models.CharField(max_length=8, choices=SOURCES)
    group = models.CharField(max_length=255)
    # None: the role is bound globally (only holders of directory.manage everywhere map so).
    team = models.ForeignKey(
        "accounts.Team",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="directory_mappings",
    )
    role = models.ForeignKey(
        "rbac.Role",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="directory_mappings",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    # Managed by whoever holds directory.manage on the team.
    rbac_team_field = "team"

    class Meta:
        ordering = ["source", "group", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "group", "team", "role"], name="unique_group_mapping"
            ),
            models.UniqueConstraint(
                fields=["source", "group", "team"],
                condition=models.Q(role__isnull=True),
                name="unique_group_mapping_no_role",
            ),
            models.CheckConstraint(
                condition=models.Q(team__isnull=False) | models.Q(role__isnull=False),
                name="group_mapping_team_or_role",
            ),
        ]

    def __str__(self):
        role = f" as {self.role}" if self.role_id else ""
        return f"{self.source}:{self.group} -> {self.team or 'global'}{role}"


class DirectoryIdentity(models.Model):
    """The directory account a Berth user signs in as; local accounts have none."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="directory_identity"
    )
    source = models.CharField(max_length=8, choices=SOURCES)
    # LDAP: the entry's DN; OIDC: "<issuer> <sub>".
    subject = models.CharField(max_length=512)
    groups = models.JSONField(default=list, blank=True)
    last_sign_in = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "subject"], name="unique_directory_subject")
        ]

    def __str__(self):
        return f"{self.source}:{self.subject}"


class SyncedMembership(models.Model):
    """A team membership that sign-in created; sign-in removes it when no mapping gives it."""

    membership = models.OneToOneField(
        "accounts.Membership", on_delete=models.CASCADE, related_name="directory_sync"
    )


class SyncedBinding(models.Model):
    """A role binding that sign-in created; sign-in removes it when no mapping gives it."""

    binding = models.OneToOneField(
        "rbac.RoleBinding", on_delete=models.CASCADE, related_name="directory_sync"
    )
