"""Heartbeats: each agent stamps its Host row; any agent marks silent hosts down."""

import os
from datetime import timedelta

from django.utils import timezone

from hosts.models import Host

INTERVAL_SECONDS = 15
# A host silent for more than three intervals is down.
DOWN_AFTER = timedelta(seconds=3 * INTERVAL_SECONDS)


def beat(host_name: str, *, info: dict | None = None) -> int:
    """Stamp this host up now (creating its row if an admin has not); returns hosts marked down."""
    now = timezone.now()
    fields = {"last_heartbeat": now, "state": Host.State.UP}
    if info is not None:
        fields["info"] = info
    if not Host.objects.filter(name=host_name).update(**fields):
        Host.objects.create(name=host_name, **fields)
    return mark_down(now)


def mark_down(now=None) -> int:
    """Mark every host without a heartbeat for DOWN_AFTER as down; returns how many changed."""
    now = now or timezone.now()
    silent = Host.objects.filter(state=Host.State.UP).exclude(last_heartbeat__gte=now - DOWN_AFTER)
    return silent.update(state=Host.State.DOWN)


def host_info(get_runtime) -> dict:
    """What the dashboard shows about this host: kernel, cgroup version, agent pid, containers."""
    info = {"kernel": os.uname().release, "worker_pid": os.getpid()}
    try:
        rt = get_runtime()
        states = rt.list()
        info["containers"] = len(states)
        info["running"] = sum(1 for s in states if s.get("status") == "running")
    except Exception as err:  # the heartbeat must go out even when the runtime is unwell
        info["runtime_error"] = str(err)[:200]
        return info
    try:
        from runtime.cgroups import driver_for

        info["cgroup_version"] = driver_for(rt.config).version
    except Exception:
        pass
    return info
