"""Apply the group mappings at sign-in: memberships and role bindings added and removed, audited.

Only what sign-in created is ever removed (SyncedMembership, SyncedBinding): memberships and
bindings an admin made by hand stay, whatever the directory says.
"""

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Membership
from audit.services import record_event
from directory.models import (
    DirectoryIdentity,
    GroupMapping,
    SyncedBinding,
    SyncedMembership,
)
from directory.refusal import Refused
from rbac.grants import forget
from rbac.models import RoleBinding

MAX_GROUPS = 500


def normalize_groups(groups) -> list[str]:
    """Group names as compared with mappings: strings, stripped, case-folded, de-duplicated."""
    if isinstance(groups, str):
        groups = [groups]
    if not isinstance(groups, list | tuple | set):
        return []
    out = [g.strip().lower() for g in groups if isinstance(g, str) and g.strip()]
    return sorted(set(out))[:MAX_GROUPS]


def matching_mappings(source: str, groups: list[str]):
    """The mappings of `source` whose group is one of `groups` (case-insensitive)."""
    wanted = set(groups)
    return [
        m
        for m in GroupMapping.objects.filter(source=source).select_related("team", "role")
        if m.group.strip().lower() in wanted
    ]


def _find_user(source: str, subject: str, username: str):
    """The user of this identity; a local account of the same name is never taken over."""
    identity = (
        DirectoryIdentity.objects.select_related("user")
        .filter(source=source, subject=subject)
        .first()
    )
    if identity is not None:
        return identity.user, identity
    User = get_user_model()
    if User.objects.filter(username__iexact=username).exists():
        raise Refused(
            "An account with this username exists in Berth already and is not linked to the "
            "directory; ask an administrator.",
            f"{source}: username {username!r} belongs to a local account",
        )
    return None, None


def _apply(user, mappings) -> dict:
    """Bring the user's synced memberships and bindings to what `mappings` give."""
    want_teams = {m.team_id: m.team for m in mappings if m.team_id}
    want_bindings = {(m.team_id, m.role_id): m for m in mappings if m.role_id}
    added, removed = [], []

    for synced in SyncedMembership.objects.filter(membership__user=user).select_related(
        "membership__team"
    ):
        if synced.membership.team_id not in want_teams:
            removed.append(f"member of {synced.membership.team.name}")
            synced.membership.delete()
    for team_id, team in want_teams.items():
        membership, created = Membership.objects.get_or_create(team_id=team_id, user=user)
        if created:
            SyncedMembership.objects.create(membership=membership)
            added.append(f"member of {team.name}")

    for synced in SyncedBinding.objects.filter(binding__user=user).select_related(
        "binding__role", "binding__scope_team"
    ):
        binding = synced.binding
        if (binding.scope_team_id, binding.role_id) not in want_bindings:
            removed.append(f"role {binding.role.name} on {binding.scope_label}")
            binding.delete()
    for (team_id, role_id), mapping in want_bindings.items():
        binding, created = RoleBinding.objects.get_or_create(
            user=user, role_id=role_id, scope_team_id=team_id, scope_host=None
        )
        if created:
            SyncedBinding.objects.create(binding=binding)
            where = f"team:{mapping.team.name}" if mapping.team_id else "global"
            added.append(f"role {mapping.role.name} on {where}")
    return {"added": added, "removed": removed}


def _record_sync(user, source, groups, mappings, changes, outcome="allowed", reason=""):
    record_event(
        actor=user,
        action="directory.sync",
        outcome=outcome,
        reason=reason or f"{len(mappings)} mapping(s) matched at {source} sign-in",
        object_type="user",
        object_id=user.pk,
        object_repr=user.username,
        summary={
            "source": source,
            "groups": groups[:50],
            "mappings": [m.pk for m in mappings],
            **changes,
        },
    )


def strip(user, source: str, reason: str) -> None:
    """Remove every membership and binding sign-in gave `user` (the directory no longer does)."""
    with transaction.atomic():
        changes = _apply(user, [])
        if changes["removed"]:
            _record_sync(user, source, [], [], changes, reason=reason)
    forget(user)


def sign_in(*, source: str, subject: str, username: str, profile: dict, groups) -> object:
    """The Berth user for a verified directory account, with the mappings applied; Refused when
    no mapping matches (or the name belongs to a local account). Nothing is written then, except
    that an existing directory user loses what sign-in had given them."""
    username = (username or "").strip()[:150]
    if not username:
        raise Refused("The directory gave no username for this account.", f"{source}: no username")
    groups = normalize_groups(groups)
    try:
        return _sign_in(source, subject[:512], username, profile, groups)
    except IntegrityError:
        # Two first sign-ins of one account at once: the other one made the user; use it.
        return _sign_in(source, subject[:512], username, profile, groups)


def _sign_in(source, subject, username, profile, groups):
    user, identity = _find_user(source, subject, username)
    mappings = matching_mappings(source, groups)
    if not mappings:
        if user is not None:
            strip(user, source, "no mapped group any more")
        raise Refused(
            "None of your directory groups gives access to Berth; ask an administrator.",
            f"{source}: no group of {username!r} maps to a team ({len(groups)} group(s))",
        )
    if user is not None and not user.is_active:
        raise Refused(
            "This account is disabled in Berth.", f"{source}: Berth account {username!r} inactive"
        )
    with transaction.atomic():
        if user is None:
            user = get_user_model()(username=username)
            user.set_unusable_password()
        for field in ("email", "first_name", "last_name"):
            value = (profile.get(field) or "")[:150]
            if value:
                setattr(user, field, value)
        user.save()
        if identity is None:
            identity = DirectoryIdentity(user=user, source=source, subject=subject)
        identity.groups = groups[:100]
        identity.last_sign_in = timezone.now()
        identity.save()
        changes = _apply(user, mappings)
        _record_sync(user, source, groups, mappings, changes)
    forget(user)
    return user
