"""Heartbeats: each agent stamps its Host row; any agent marks silent hosts down."""

import os
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from agent import metrics_report
from containers.models import Container
from hosts.models import Host

INTERVAL_SECONDS = settings.BERTH_HEARTBEAT_SECONDS
# A host silent for more than three intervals is down.
DOWN_AFTER = timedelta(seconds=3 * INTERVAL_SECONDS)


def beat(host_name: str, *, info: dict | None = None) -> int:
    """Stamp this host up now; returns hosts marked down.

    Hosts are enrolled (or registered by `manage.py bootstrap`), never made by a heartbeat; a
    removed (revoked) host or one that never joined stays as it is.
    """
    now = timezone.now()
    fields = {"last_heartbeat": now, "state": Host.State.UP}
    if info is not None:
        fields["info"] = info
    Host.objects.filter(name=host_name, revoked_at__isnull=True).exclude(
        state=Host.State.PENDING
    ).update(**fields)
    return mark_down(now)


# What a down host's containers are not marked unknown from: never created, or gone for good.
_KEEP_WHEN_DOWN = (Container.Observed.PENDING, Container.Observed.REMOVED)


def mark_down(now=None) -> int:
    """Mark every host without a heartbeat for DOWN_AFTER as down; returns how many changed.

    The containers of a host marked down become observed `unknown`: their rows, runtime ids,
    pids and desired states stay, and the host's next reconcile pass reports what it runs.
    """
    now = now or timezone.now()
    if _restricted_role():
        # An agent with its own database role may not write other hosts' rows: one narrow
        # function owned by the web's role does this (agent/dbroles.py).
        with connection.cursor() as cursor:
            cursor.execute("SELECT berth_mark_hosts_down(%s)", [now - DOWN_AFTER])
            return cursor.fetchone()[0]
    changed = 0
    silent = Host.objects.filter(state=Host.State.UP).exclude(last_heartbeat__gte=now - DOWN_AFTER)
    for host_id in silent.values_list("id", flat=True):
        with transaction.atomic():
            # Conditional per host: of two agents marking the same host, one changes it, and a
            # heartbeat that arrived since keeps it up.
            if not (
                Host.objects.filter(id=host_id, state=Host.State.UP)
                .exclude(last_heartbeat__gte=now - DOWN_AFTER)
                .update(state=Host.State.DOWN)
            ):
                continue
            Container.objects.filter(host_id=host_id).exclude(
                observed_state__in=_KEEP_WHEN_DOWN
            ).update(observed_state=Container.Observed.UNKNOWN, updated_at=timezone.now())
        changed += 1
    return changed


def _restricted_role() -> bool:
    """Whether this process connects as an agent's own PostgreSQL role (agent/dbroles.py)."""
    from agent.dbroles import ROLE_PREFIX

    user = connection.settings_dict.get("USER") or ""
    return connection.vendor == "postgresql" and user.startswith(ROLE_PREFIX)


def host_info(get_runtime) -> dict:
    """What the dashboard shows about this host: kernel, cgroup version, agent pid, containers."""
    info = {"kernel": os.uname().release, "worker_pid": os.getpid()}
    try:
        # Free memory for placement (hosts/placement.py): MemAvailable, in bytes.
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    info["mem_available"] = int(line.split()[1]) * 1024
                elif line.startswith("MemTotal:"):
                    info["mem_total"] = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    # What the web checks a container spec against before it accepts one
    # (containers/host_checks.py): the online CPUs ("0-3") and the block devices.
    try:
        with open("/sys/devices/system/cpu/online") as online:
            info["cpus"] = online.read().strip()
        info["block_devices"] = sorted(f"/dev/{name}" for name in os.listdir("/sys/class/block"))
    except OSError:
        pass
    try:
        rt = get_runtime()
        states = rt.list()
        info["containers"] = len(states)
        info["running"] = sum(1 for s in states if s.get("status") == "running")
        metrics_report.publish(rt, states)  # per-container usage for /metrics
    except Exception as err:  # the heartbeat must go out even when the runtime is unwell
        info["runtime_error"] = str(err)[:200]
        return info
    try:
        from runtime.cgroups import driver_for

        info["cgroup_version"] = driver_for(rt.config).version
    except Exception:
        pass
    return info
