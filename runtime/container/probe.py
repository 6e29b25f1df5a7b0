"""Run a health check inside a running container, with a time limit.

Like exec (container/execute.py, whose helper it uses) but bounded: the program gets
`timeout` seconds; then it is killed and the check counts as failed, as in Docker. Output is
kept to the first MAX_OUTPUT bytes (Docker keeps 4 KiB of each check).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time

from runtime.container import execute
from runtime.container import status as sm

MAX_OUTPUT = 4096
TIMED_OUT = -1


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _kill_tree(pid: int) -> None:
    """SIGKILL the helper's program and what it started (deepest first), then the helper."""
    stack, seen = [pid], []
    while stack:
        current = stack.pop()
        seen.append(current)
        stack.extend(_children(current))
    for victim in reversed(seen):
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)


def run(rt, ref: str, argv: list[str], timeout: float) -> tuple[int, bytes]:
    """(exit code, first output bytes) of `argv` in the container; exit TIMED_OUT when it
    ran past `timeout` seconds (it is killed)."""
    cid = rt.store.resolve(ref)
    rec, obs = rt._observe(cid)
    sm.check("exec", rec["name"], obs["status"])
    read_fd, write_fd = os.pipe()
    devnull = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        helper = execute.spawn(rt, rec, obs["pid"], argv, [devnull, write_fd, write_fd])
    finally:
        os.close(devnull)
        os.close(write_fd)
    output = bytearray()
    deadline = time.monotonic() + timeout
    timed_out = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                _kill_tree(helper)
                break
            ready, _, _ = select.select([read_fd], [], [], left)
            if not ready:
                continue
            data = os.read(read_fd, 65536)
            if not data:
                break
            if len(output) < MAX_OUTPUT:
                output += data[: MAX_OUTPUT - len(output)]
    finally:
        os.close(read_fd)
        _, status = os.waitpid(helper, 0)
    if timed_out:
        return TIMED_OUT, bytes(output)
    code = os.waitstatus_to_exitcode(status)
    return (128 - code if code < 0 else code), bytes(output)
