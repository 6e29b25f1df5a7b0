"""Entry point the shim starts (detached, short-lived) once its container has exited for good.

It releases what the stopped container still holds: its port maps and addresses, or the
whole container when it was run with auto-remove (`run --rm`). The shim itself stays a small
C program; this Python process lives only for the cleanup.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from runtime.config import RuntimeConfig

CODE = (
    "import sys; sys.path.insert(0, sys.argv[2]); "
    "from runtime.container.postexit import main; main()"
)


def config_from(cfg: dict) -> RuntimeConfig:
    """The RuntimeConfig the shim was started with (its JSON form in the shim's arguments)."""
    return RuntimeConfig(
        root=Path(cfg["root"]),
        run_root=Path(cfg["run_root"]),
        prefix=cfg["prefix"],
        cgroup_root=Path(cfg["cgroup_root"]),
        default_pids_limit=cfg["default_pids_limit"],
        extra=cfg.get("extra") or {},
    )


def main() -> None:
    """Run Runtime.after_exit for the shim's container."""
    args = json.loads(sys.argv[1])
    config = config_from(args["config"])
    if not (config.containers_dir / args["cid"] / "config.json").exists():
        return  # already removed (`run --rm`'s own delete won): nothing to load the API for
    from runtime.api import Runtime

    Runtime(config).after_exit(args["cid"])
