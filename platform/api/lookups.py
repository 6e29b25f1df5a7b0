"""Resolve a team or host named in a request body among those the user may see."""

from accounts.models import Team
from config.errors import InvalidRequest
from config.ids import as_id, is_id
from hosts.models import Host
from rbac import gate


def pick(queryset, value, what):
    """By id or name; the only visible one when none is named; 400 when unknown or ambiguous."""
    if value in (None, ""):
        found = list(queryset[:2])
        if len(found) != 1:
            raise InvalidRequest(f"{what} is required")
        return found[0]
    lookup = {"pk": as_id(value)} if is_id(value) else {"name": str(value)}
    obj = queryset.filter(**lookup).first()
    if obj is None:
        raise InvalidRequest(f"unknown {what} {value!r}")
    return obj


def pick_team(user, value):
    """A team the user may see."""
    return pick(gate.restrict(Team.objects.all(), user, "team.view"), value, "team")


def pick_host(user, value):
    """A host the user may see."""
    return pick(gate.restrict(Host.objects.all(), user, "host.view"), value, "host")
