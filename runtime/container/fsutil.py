"""Small file helpers: atomic JSON writes and process liveness by pid and start time."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically (tmp file + rename) so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    text = json.dumps(data)  # the C encoder (json.dump streams through the Python one)
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def read_json(path: Path, default=None):
    """Read a JSON file, or return `default` when it does not exist."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def proc_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks (field 22 of /proc/<pid>/stat), None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(b")") + 2 :].split()
    if fields[0] == b"Z":
        return None
    return int(fields[19])


def alive(pid: int | None, start: int | None) -> bool:
    """True if `pid` still names the same process (its start time guards against pid reuse)."""
    if not pid:
        return False
    now = proc_start_time(pid)
    return now is not None and (start is None or now == start)


@contextlib.contextmanager
def socket_path(path: Path):
    """A bind/connect address for `path` even beyond AF_UNIX's 108 bytes (via /proc/self/fd)."""
    if len(os.fsencode(str(path))) < 100:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)
