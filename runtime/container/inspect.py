"""stats and top: read from the container's cgroup and /proc, never by exec'ing tools."""

from __future__ import annotations

import dataclasses
import os
import pwd
import time

_HZ = os.sysconf("SC_CLK_TCK")


def stats(rt, cid: str) -> dict:
    """The cgroup counters as a dict (bytes, nanoseconds, counts)."""
    sample = rt.cgroups.stats(cid)
    data = dataclasses.asdict(sample) if dataclasses.is_dataclass(sample) else dict(sample)
    data["id"] = cid
    data["read_at"] = time.time()
    _, observed = rt._observe(cid)
    pid = observed["pid"] if observed["status"] in ("running", "paused") else None
    data["networks"] = network_counters(pid) if pid else {}
    return data


def network_counters(pid: int) -> dict:
    """Per-interface counters of the network namespace `pid` lives in, in Docker's shape.

    /proc/<pid>/net/dev shows the namespace of that process, so no setns() is needed.
    """
    try:
        with open(f"/proc/{pid}/net/dev", "rb") as f:
            lines = f.read().decode().splitlines()[2:]
    except OSError:
        return {}
    out = {}
    for line in lines:
        name, _, counters = line.partition(":")
        name, values = name.strip(), counters.split()
        if name == "lo" or len(values) < 16:
            continue
        out[name] = {
            "rx_bytes": int(values[0]),
            "rx_packets": int(values[1]),
            "rx_errors": int(values[2]),
            "rx_dropped": int(values[3]),
            "tx_bytes": int(values[8]),
            "tx_packets": int(values[9]),
            "tx_errors": int(values[10]),
            "tx_dropped": int(values[11]),
        }
    return out


def _proc_row(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
        uid = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None
    comm = raw[raw.index(b"(") + 1 : raw.rindex(b")")].decode(errors="replace")
    fields = raw[raw.rindex(b")") + 2 :].split()
    ppid = int(fields[1])
    cpu = (int(fields[11]) + int(fields[12])) // _HZ
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    return [
        user,
        str(pid),
        str(ppid),
        f"{cpu // 3600:02d}:{cpu // 60 % 60:02d}:{cpu % 60:02d}",
        cmdline or f"[{comm}]",
    ]


def top(pids: list[int]) -> dict:
    """Process table in Docker's shape: titles and rows (host pids, like `docker top`)."""
    rows = [row for row in (_proc_row(pid) for pid in sorted(pids)) if row]
    return {"titles": ["UID", "PID", "PPID", "TIME", "CMD"], "processes": rows}
