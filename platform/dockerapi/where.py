"""Which team owns, and which host runs, what a Docker client creates.

Team: the label `io.berth.team` (a team id or name the caller may see) when given; otherwise
the caller's only team: the one team they are a member of, else the one team they may see.
More than one and no label: 400 naming the label.

Host: the label `io.berth.host` when given; else the host of the user networks or named
volumes the container uses (they live on one host); else placement (hosts/placement.py
`choose`): the best host the gate lets the caller create on for that team.
"""

from accounts.models import Team
from api.lookups import pick_host, pick_team
from config.errors import InvalidRequest
from dockerapi.errors import bad_request
from dockerapi.translate import HOST_LABEL, TEAM_LABEL
from hosts import placement
from networks.models import Network
from rbac import gate
from volumes.models import Volume


def team_for(user, labels: dict | None):
    """The team a create is for (see the module's rule)."""
    named = (labels or {}).get(TEAM_LABEL)
    try:
        if named:
            return pick_team(user, named)
        visible = gate.restrict(Team.objects.all(), user, "team.view")
        member = list(visible.filter(memberships__user=user).distinct()[:2])
        if len(member) == 1:
            return member[0]
        return pick_team(user, None)
    except InvalidRequest as exc:
        hint = f"; name one with the label {TEAM_LABEL}=<team>" if not named else ""
        raise bad_request(f"{exc.message}{hint}") from None


def host_for(user, team, labels: dict | None, spec: dict | None = None):
    """The host a create goes to (see the module's rule)."""
    named = (labels or {}).get(HOST_LABEL)
    if named:
        try:
            return pick_host(user, named)
        except InvalidRequest as exc:
            raise bad_request(exc.message) from None
    spec = spec or {}
    networks = (spec.get("network") or {}).get("networks") or []
    volumes = [m.get("source") for m in spec.get("mounts") or [] if m.get("type") == "volume"]
    for queryset, names in ((Network.objects, networks), (Volume.objects, volumes)):
        if names:
            rows = gate.restrict(
                queryset.filter(name__in=names, team=team),
                user,
                "network.view" if queryset.model is Network else "volume.view",
            )
            hosts = {row.host_id: row.host for row in rows}
            if len(hosts) == 1:
                return next(iter(hosts.values()))
    return placement.choose(user, team)
