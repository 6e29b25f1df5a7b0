"""Which host takes a new container: refusals for a named host, a choice when none is named.

A host takes new containers when it joined (not pending), is not removed (revoked), not
cordoned, and is up: state `up` and no heartbeat older than the grace period (a host whose only
agent died is not marked down by anyone else; its stale heartbeat says so).

When a create names no host, the candidates are the hosts the caller may create a container on
for that team (the gate decides each one, so host-scoped role bindings narrow the choice), and
the one with the most free memory per container wins:

    score = mem_available / (live containers + 1)       (highest first)

`mem_available` is what the agent's heartbeat reports (bytes, /proc/meminfo MemAvailable);
live containers are the host's rows whose desired state is created, running or paused (so
containers placed a moment ago and not yet started count too). A host that reports no memory
ranks after every host that does, then by fewest containers, then by name.
"""

from django.db.models import Q
from django.utils import timezone

from config.errors import Conflict, InvalidRequest
from hosts import counting
from hosts.models import HEARTBEAT_GRACE, Host
from rbac import gate

LIVE_DESIRED = ("created", "running", "paused")


def unreachable(host: Host) -> str:
    """Why `host` cannot do any new work now: removed, not joined or down ("" when it can)."""
    if host.revoked_at is not None:
        return f"host {host.name} was removed; it takes no containers"
    if host.state == Host.State.PENDING:
        return (
            f"host {host.name} has not joined yet: run `scripts/berth-agent --join URL TOKEN` "
            "on that machine"
        )
    stale = host.last_heartbeat and timezone.now() - host.last_heartbeat >= HEARTBEAT_GRACE
    if host.state != Host.State.UP or stale:
        since = host.last_heartbeat.isoformat() if host.last_heartbeat else "never"
        return f"host {host.name} is down (last heartbeat: {since})"
    return ""


def refusal(host: Host) -> str:
    """Why `host` takes no new container now ("" when it does): unreachable, or cordoned."""
    if host.cordoned and host.revoked_at is None and host.state != Host.State.PENDING:
        return f"host {host.name} is cordoned; it takes no new containers"
    return unreachable(host)


def check_accepts(host: Host) -> None:
    """Raise Conflict (409) unless `host` takes new containers."""
    reason = refusal(host)
    if reason:
        raise Conflict(reason, code="host_unavailable")


def usable_q() -> Q:
    """Hosts that may take containers, as far as SQL can tell (the heartbeat age aside)."""
    fresh = Q(last_heartbeat__isnull=True) | Q(last_heartbeat__gt=timezone.now() - HEARTBEAT_GRACE)
    return Q(state=Host.State.UP, cordoned=False, revoked_at__isnull=True) & fresh


def score(host: Host) -> tuple:
    """Sort key: most free memory per container first; unknown memory last."""
    live = getattr(host, "live_containers", 0)
    mem = (host.info or {}).get("mem_available")
    if isinstance(mem, int | float) and not isinstance(mem, bool) and mem > 0:
        return (0, -mem / (live + 1), live, host.name)
    return (1, 0, live, host.name)


def candidates(user, team) -> list[Host]:
    """Hosts that take containers and on which the gate lets `user` create one for `team`."""
    from containers.models import Container  # containers depends on hosts, not the reverse

    hosts = gate.restrict(Host.objects.all(), user, "host.view").filter(usable_q())
    found = [
        host
        for host in hosts
        if gate.decide(user, "container.create", Container(team=team, host=host)).allowed
    ]
    if len(found) > 1:
        # Counted only when there is a choice to make: the count reads every live row of the
        # candidates, a cost that grows with the fleet's containers (issue 19).
        counts = counting.per_host(
            Container.objects.filter(host__in=found, desired_state__in=LIVE_DESIRED)
        )
        for host in found:
            host.live_containers = counts.get(host.pk, 0)
    return found


def choose(user, team) -> Host:
    """The host a create that names none goes to (400 when none fits, saying why)."""
    found = sorted(candidates(user, team), key=score)
    if not found:
        raise InvalidRequest(
            f"no host can take a container of team {team.name} for you now (every host you "
            "may use is down, cordoned, removed or not joined yet); name one with `host`",
            code="no_host",
        )
    return found[0]
