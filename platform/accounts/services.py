"""User and team changes shared by the REST API and the dashboard: one gate call, one audit row.

The escalation options built here are what the gate (rbac.checks) judges: changing a user means
acting as them, adding a member hands them the team's roles.
"""

from django.db import transaction

from accounts.models import Membership, Team, User
from config.errors import InvalidRequest
from rbac import gate
from rbac.grants import forget, grants_for
from rbac.models import RoleBinding

PRIVILEGED_USER_FIELDS = ("is_staff", "is_superuser", "is_active")
# Flags the dashboard may set on another user (superuser stays an API matter).
DASHBOARD_USER_FLAGS = ("is_active", "is_staff")


def _truthy(value) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def user_change_options(target, data) -> dict:
    """Gate options for changing `target` with `data`: you must hold all they hold.

    Their staff, superuser and active flags are never writable by themselves.
    """
    data = data if isinstance(data, dict) else {}
    options = {
        "grants": [
            {
                "permissions": sorted(grant.codes),
                "bind_paths": list(grant.bind_paths),
                "team_id": grant.team_id,
                "host_id": grant.host_id,
            }
            for grant in grants_for(target)
        ]
    }
    if _truthy(data.get("is_superuser")) or _truthy(data.get("is_staff")):
        # Granting staff or superuser is for admins only: it needs every permission.
        options["permissions"] = ["*"]
    if any(name in data for name in PRIVILEGED_USER_FIELDS):
        options["subject_user_id"] = target.pk
        options["self_message"] = "you cannot change your own staff, superuser or active flags"
    return options


def new_user_options(user) -> dict:
    """Gate options for creating `user` (unsaved): staff or superuser needs every permission,
    the same rule as changing those flags on an existing user."""
    return {"permissions": ["*"]} if user.is_staff or user.is_superuser else {}


def member_options(team, user_id) -> dict:
    """Gate options for adding `user_id` to `team`: they receive every binding of the team."""
    grants = [
        {
            "permissions": binding.role.permissions,
            "bind_paths": binding.role.bind_paths,
            "team_id": binding.scope_team_id,
            "host_id": binding.scope_host_id,
        }
        for binding in RoleBinding.objects.filter(team=team).select_related("role")
    ]
    return {
        "subject_user_id": user_id,
        "self_message": "you cannot change your own team memberships",
        "grants": grants,
    }


def do_set_user_flags(target, flags: dict, *, acting_user, summary=None) -> User:
    """Set is_active / is_staff of another user through the gate (user.change), audited."""
    unknown = set(flags) - set(DASHBOARD_USER_FLAGS)
    if unknown:
        raise InvalidRequest(f"unknown user flag(s): {', '.join(sorted(unknown))}")
    decision = gate.require(
        acting_user,
        "user.change",
        target,
        resource="user",
        options=user_change_options(target, flags),
        summary=summary,
    )
    with transaction.atomic():
        for name, value in flags.items():
            setattr(target, name, bool(value))
        target.save(update_fields=list(flags))
        gate.record(decision, summary=(summary or {}) | {"flags": flags})
    forget(target)
    return target


def do_create_team(*, name: str, description: str = "", acting_user, summary=None) -> Team:
    """A new team (team.create), audited in the same transaction."""
    name = (name or "").strip()
    if not name:
        raise InvalidRequest("a team needs a name")
    if Team.objects.filter(name=name).exists():
        raise InvalidRequest(f"a team named {name!r} already exists")
    decision = gate.require(
        acting_user,
        "team.create",
        Team(name=name, description=description),
        resource="team",
        summary=summary,
    )
    with transaction.atomic():
        team = Team.objects.create(name=name, description=description)
        gate.record(decision, summary=(summary or {}) | {"team": team.name})
    return team


def do_change_membership(team, member, *, adding: bool, acting_user, summary=None) -> None:
    """Add or remove a member (team.change); adding passes the escalation rule."""
    options = member_options(team, member.pk)
    if not adding:
        options["grants"] = []
    decision = gate.require(
        acting_user, "team.change", team, resource="team", options=options, summary=summary
    )
    with transaction.atomic():
        if adding:
            Membership.objects.get_or_create(team=team, user=member)
        else:
            Membership.objects.filter(team=team, user=member).delete()
        gate.record(
            decision,
            summary=(summary or {}) | {"user": member.pk, "op": "add" if adding else "remove"},
        )
    forget(member)
