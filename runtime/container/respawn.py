"""Entry point the shim execs (in its own process) to start its container again (restart policy)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from runtime.config import RuntimeConfig


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
    cfg = args["config"]
    config = RuntimeConfig(
        root=Path(cfg["root"]),
        run_root=Path(cfg["run_root"]),
        prefix=cfg["prefix"],
        cgroup_root=Path(cfg["cgroup_root"]),
        default_pids_limit=cfg["default_pids_limit"],
    )
    rt = Runtime(config)
    rec = rt.store.read_record(args["cid"])
    launch.respawn(rt, rec, args)
