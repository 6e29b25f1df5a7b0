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
