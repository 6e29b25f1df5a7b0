"""The agent's two lanes: its short-lane worker owns the long-lane worker that started beside it.

scripts/berth-agent starts the long lane's Celery worker (queue `host.<name>.long`) in the
background, then execs the short lane's worker, so the long worker is the short worker's
child (BERTH_AGENT_LONG_PID). It dies with it (parent-death signal), and a warm shutdown of
the short worker stops it too, so whoever stops the agent by its pid stops both lanes.
"""

import contextlib
import logging
import os
import signal
import time

log = logging.getLogger(__name__)
STOP_SECONDS = 30


def stop_long_worker() -> None:
    """Warm-stop the long lane's worker (SIGTERM, SIGKILL after STOP_SECONDS) and reap it."""
    if os.environ.get("BERTH_AGENT_LANE") == "long":
        return
    try:
        pid = int(os.environ.get("BERTH_AGENT_LONG_PID") or 0)
    except ValueError:
        return
    if pid <= 0:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return  # not our child (or reaped already): it got its signal
        if done:
            return
        time.sleep(0.1)
    log.warning("long-lane worker %s did not stop in %s s; killing it", pid, STOP_SECONDS)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
