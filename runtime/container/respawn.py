"""Entry point the shim execs (in its own process) to start its container again (restart policy)."""

from __future__ import annotations

import json
import sys

from runtime.container.postexit import config_from


def main() -> None:
    """Rebuild the runtime from the shim's arguments and respawn the container."""
    from runtime.container import launch

    # This process made a PID namespace whose init has died: until it points its children
    # back at its own namespace, it cannot even start a thread.
    launch.reset_pid_namespace()
    from runtime.api import Runtime

    args = json.loads(sys.argv[1])
    if len(sys.argv) > 3:
        args["restart_count"] = int(sys.argv[3])
    rt = Runtime(config_from(args["config"]))
    rec = rt.store.read_record(args["cid"])
    launch.respawn(rt, rec, args)


# -- restart policy decisions made outside the shim (its monitor gone, the host booted) ------
# The shim applies the policy itself while it lives (shim.c / shim.py); these rules cover
# what it cannot see: its own death and a reboot. They follow Docker's documented behaviour
# (docs/agent.md, "Restart policies at boot").


def _policy(spec: dict) -> tuple[str, int]:
    restart = (spec or {}).get("restart") or {}
    return restart.get("name") or "no", int(restart.get("max_retries") or 0)


def after_lost_monitor(spec: dict, *, code: int, count: int, user_stopped: bool) -> bool:
    """Whether a container that ended with its monitor gone restarts (as if the shim saw it exit).

    A user's stop always wins; `always` and `unless-stopped` restart; `on-failure` restarts a
    non-zero exit while its retries last (`count` restarts so far, `max_retries` 0: no limit).
    """
    name, limit = _policy(spec)
    if user_stopped:
        return False
    if name in ("always", "unless-stopped"):
        return True
    if name == "on-failure":
        return code != 0 and (limit == 0 or count < limit)
    return False


def at_boot(
    spec: dict, *, was_running: bool, code: int | None, count: int, user_stopped: bool
) -> bool:
    """Whether a stopped container starts when its host boots (Docker's daemon-start rules).

    `always`: yes, even after a user's stop. `unless-stopped`: yes unless a user stopped it.
    `on-failure`: only a container that had failed before the boot (non-zero exit, retries
    left) and was waiting for its restart; one that was running when the host went down did
    not fail, and Docker does not restart on-failure containers when its daemon starts.
    """
    name, limit = _policy(spec)
    if name == "always":
        return True
    if name == "unless-stopped":
        return not user_stopped
    if name == "on-failure":
        if was_running or user_stopped or not code:
            return False
        return limit == 0 or count < limit
    return False
