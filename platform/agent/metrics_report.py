"""The agent's share of /metrics: each heartbeat, every Berth container's cgroup counters
(CPU, memory, pids, network, block I/O) go to Redis for the web to serve (metrics/reports.py),
as cAdvisor reports Docker's containers.

Containers are named by the platform's primary key (from their `io.berth.container` label);
names and teams are joined in by the web, so labels stay bounded and cannot be made up here.
"""

import logging
import time

from django.conf import settings

from agent.hostname import this_host

log = logging.getLogger(__name__)

# A report outlives three heartbeats at most: a silent host's numbers disappear with it.
TTL_SECONDS = 3 * settings.BERTH_HEARTBEAT_SECONDS


def sample(stats: dict) -> dict:
    """The reported fields of one runtime stats dict (bytes, seconds, counts)."""
    networks = stats.get("networks") or {}
    return {
        "cpu_seconds": (stats.get("cpu_usage_ns") or 0) / 1e9,
        "memory_bytes": stats.get("memory_usage") or 0,
        "memory_limit_bytes": stats.get("memory_limit"),
        "pids": stats.get("pids_current") or 0,
        "rx_bytes": sum(n.get("rx_bytes", 0) for n in networks.values()),
        "tx_bytes": sum(n.get("tx_bytes", 0) for n in networks.values()),
        "blkio_read_bytes": stats.get("blkio_read_bytes") or 0,
        "blkio_write_bytes": stats.get("blkio_write_bytes") or 0,
        "oom_kills": stats.get("oom_kills") or 0,
    }


def collect(rt, states: list[dict], host_name: str) -> dict:
    """{primary key: sample} for this host's running or paused Berth containers."""
    # Here, not at import: agent.lookup imports `runtime`, which the web never loads.
    from agent.lookup import LABEL, _labels

    out = {}
    for state in states:
        if state.get("status") not in ("running", "paused"):
            continue
        owner, _, pk = (_labels(state).get(LABEL) or "").rpartition("/")
        if owner != host_name or not pk.isdigit():
            continue  # not ours (another installation, a stray container)
        try:
            out[pk] = sample(counters(rt, state))
        except Exception as err:  # gone between list and stats: the next beat tells
            log.debug("metrics: no stats for %s: %s", state.get("id"), err)
    return out


def counters(rt, state: dict) -> dict:
    """rt.stats() of a container the list just observed, without observing it again.

    rt.stats() resolves the id and observes the container from its files (record, state,
    shim and init start times) for its pid: at 1,000 containers that was two thirds of each
    heartbeat's report, about 0.5 s of the agent's main process every interval (issue 19).
    The list's state already has the status and pid; the cgroup's counters and the network
    namespace's are read as rt.stats() reads them.
    """
    from runtime.container.inspect import network_counters

    data = dict(vars(rt.cgroups.stats(state["id"])))  # a CgroupStats dataclass
    pid = state.get("pid") if state.get("status") in ("running", "paused") else None
    # `--network none`: its namespace holds only lo, which is never reported; one file read
    # per container and beat saved (a thousand at 1,000 such containers).
    mode = ((state.get("spec") or {}).get("network") or {}).get("mode")
    data["networks"] = network_counters(pid) if pid and mode != "none" else {}
    return data


def publish(rt, states: list[dict]) -> None:
    """Write this host's report; never raises (the heartbeat goes out regardless)."""
    try:
        from metrics import reports

        host_name = this_host()
        report = {"at": time.time(), "containers": collect(rt, states, host_name)}
        reports.write(host_name, report, TTL_SECONDS)
    except Exception as err:
        log.warning("metrics: could not publish container stats: %s", err)
