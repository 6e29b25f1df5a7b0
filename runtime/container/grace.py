"""Stops that do not wait: arm the shim's kill deadline, send the stop signal, return.

The shim (shim.c / shim.py) reads {"kill_at": T} from the stop-flag file when it gets SIGURG
and kills the container's init at T (monotonic clock) if it still runs, so the grace period
is sat out by the container's own monitor, not by a worker of the control plane.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time

from runtime.container.paths import ContainerPaths

WAKE_SIGNAL = signal.SIGURG  # ignored by default: a shim that predates this is not hurt


def arm(paths: ContainerPaths, *, pid: int, shim_pid: int, stop_signal: int, grace: float) -> float:
    """Write the deadline, send `stop_signal` to the init and wake the shim; returns the deadline."""
    kill_at = time.monotonic() + max(0.0, grace)
    tmp = paths.stop_flag.with_name(f".{paths.stop_flag.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"kill_at": kill_at}))
    os.replace(tmp, paths.stop_flag)  # the shim never reads half a deadline
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, stop_signal)
    with contextlib.suppress(ProcessLookupError):
        os.kill(shim_pid, WAKE_SIGNAL)
    return kill_at


def deadline(paths: ContainerPaths) -> float:
    """The armed kill deadline (monotonic seconds), 0 when none is armed."""
    try:
        return float(json.loads(paths.stop_flag.read_text() or "{}").get("kill_at") or 0)
    except (OSError, ValueError, AttributeError, TypeError):
        return 0.0
