"""Kubernetes' escalation rule as an option check: grant only what you hold, never to yourself.

Options (all optional):
  subject_user_id / subject_team_id  who receives the grant (refused when it is you or your team)
  self_message                       what to say when it is you
  role_name                          the role being edited (refused when you hold it)
  permissions, bind_paths            what is granted, in the scope of the object decided on
  grants                             [{"permissions", "bind_paths", "team_id", "host_id"}]: what is
                                     granted in other scopes (a team's bindings, for a new member)
"""

from accounts.models import Membership
from containers.policy import path_within
from rbac import catalog
from rbac.grants import grants_for, in_scope


def _missing(permissions, bind_paths, held) -> list[str]:
    if "rbac.escalate" in held.codes:
        return []
    problems = []
    missing = sorted(catalog.expand(permissions or ()) - held.codes)
    if missing:
        shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
        problems.append(f"granting permissions you do not hold requires rbac.escalate: {shown}")
    for path in bind_paths or ():
        if not path_within(path, held.bind_paths):
            problems.append(f"granting bind path {path} requires holding it (or rbac.escalate)")
    return problems


def check_grant(options, scope, *, user, obj) -> list[str]:
    """The problems with granting `options` to its subject; empty when allowed."""
    problems = []
    subject_user = options.get("subject_user_id")
    subject_team = options.get("subject_team_id")
    if subject_user is not None and subject_user == user.pk:
        problems.append(options.get("self_message") or "you cannot change your own role bindings")
    if (
        subject_team is not None
        and Membership.objects.filter(team_id=subject_team, user_id=user.pk).exists()
    ):
        problems.append("you cannot change the bindings of a team you belong to")
    role_name = options.get("role_name")
    if role_name and role_name in {g.role for g in grants_for(user)}:
        problems.append(f"you cannot edit role {role_name!r}: you hold it")
    problems += _missing(options.get("permissions"), options.get("bind_paths"), scope)
    for grant in options.get("grants") or ():
        held = in_scope(user, team_id=grant.get("team_id"), host_id=grant.get("host_id"))
        problems += _missing(grant.get("permissions"), grant.get("bind_paths"), held)
    return list(dict.fromkeys(problems))
