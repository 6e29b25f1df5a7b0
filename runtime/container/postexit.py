"""Entry point the shim starts (detached, short-lived) once its container has exited for good.

It releases what the stopped container still holds: its port maps and addresses, or the
whole container when it was run with auto-remove (`run --rm`). The shim itself stays a small
C program; this Python process lives only for the cleanup. The shim runs it by the command
shimexec.POST_EXIT_CODE; only entry points import it, since main imports runtime.api, the top.
"""

from __future__ import annotations

import json
import sys

from runtime.config import RuntimeConfig


def config_from(cfg: dict) -> RuntimeConfig:
    """The RuntimeConfig the shim was started with (its JSON form in the shim's arguments)."""
    return RuntimeConfig.from_dict(cfg)


def main() -> None:
    """Run Runtime.after_exit for the shim's container."""
    args = json.loads(sys.argv[1])
    config = config_from(args["config"])
    if not (config.containers_dir / args["cid"] / "config.json").exists():
        return  # already removed (`run --rm`'s own delete won): nothing to load the API for
    from runtime.api import Runtime

    Runtime(config).after_exit(args["cid"])
