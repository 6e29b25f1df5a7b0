"""Process helpers for the benches: CPU time by pid, processes found by their command line."""

import contextlib
import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def cpu_by_pid(pids) -> dict[int, float]:
    """CPU milliseconds so far of each of these processes (all their threads)."""
    found = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError):
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) * 1000 / TICK
    return found


def pids_mentioning(text: str) -> list[int]:
    """Processes whose command line holds `text`: the containers' monitors (Berth's shims,
    containerd's shims), which leave the process trees the idle rows follow."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    """`pid` and every live process under it."""
    found, todo = [], [pid]
    while todo:
        pid = todo.pop()
        found.append(pid)
        with contextlib.suppress(OSError, ValueError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo += map(int, (task / "children").read_text().split())
    return found
