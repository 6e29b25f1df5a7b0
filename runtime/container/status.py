"""The container state machine: derive the status from the host, refuse illegal moves."""

from __future__ import annotations

from runtime.container.fsutil import alive, read_json
from runtime.container.paths import ContainerPaths
from runtime.errors import InvalidState

CREATED, RUNNING, PAUSED, STOPPED, RESTARTING = (
    "created",
    "running",
    "paused",
    "stopped",
    "restarting",
)

# verb -> statuses it may start from (the others are refused with a clear message).
ALLOWED = {
    "start": (CREATED, STOPPED, RUNNING),
    "kill": (RUNNING, RESTARTING),
    "pause": (RUNNING,),
    "unpause": (PAUSED,),
    "exec": (RUNNING,),
    "attach": (RUNNING, CREATED),
}


def observe(paths: ContainerPaths, frozen) -> dict:
    """Status from what exists: shim and init processes, the exec FIFO, the freezer."""
    shim = read_json(paths.shim_file, {}) or {}
    shim_up = alive(shim.get("shim"), shim.get("shim_start"))
    init_up = alive(shim.get("pid"), shim.get("pid_start"))
    if shim_up and init_up:
        if paths.fifo.exists():
            status = CREATED
        elif frozen():
            status = PAUSED
        else:
            status = RUNNING
    elif shim_up:
        status = RESTARTING
    elif init_up:
        status = RUNNING  # a ghost: its monitor is gone; reconcile() cleans it up
    else:
        status = STOPPED
    return {
        "status": status,
        "pid": shim.get("pid") if init_up else 0,
        "shim_pid": shim.get("shim") if shim_up else 0,
        "process": shim_up or init_up,
        "monitored": shim_up,
    }


def check(verb: str, name: str, status: str) -> None:
    """Raise InvalidState unless `verb` is legal from `status`."""
    if status in ALLOWED.get(verb, (status,)):
        return
    hint = {
        PAUSED: "; unpause it first",
        STOPPED: "; start it first",
        CREATED: "; start it first",
    }.get(status, "")
    raise InvalidState(f"cannot {verb} container {name}: it is {status}{hint}")
