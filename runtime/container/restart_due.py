"""Restarts a restart policy owes after a lost monitor, kept until a start succeeds.

`boot.recover` decides a container's restart in the pass that reaps it. Were that start to
fail once (the host short of memory, a network hiccup), an `always` or `unless-stopped`
container would stay stopped for good while its owner wants it running. So a reap leaves a
mark, one small file per container under `run_root/restart-due` (one directory listing per
pass finds them all; a boot empties `run_root`, and the boot rules then cover every
container). Each pass retries the owed containers whose back-off has passed, doubling the
back-off after each failure up to MAX_BACKOFF_SECONDS, as Docker's restart manager does. A
start, or a pass that finds nothing to restart, clears the mark.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from runtime.container.fsutil import read_json, write_json

FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 60.0


def _dir(config) -> Path:
    return config.run_root / "restart-due"


def _write(config, cid: str, failures: int, not_before: float) -> None:
    _dir(config).mkdir(mode=0o700, parents=True, exist_ok=True)
    write_json(_dir(config) / cid, {"failures": failures, "not_before": not_before})


def mark(config, cid: str) -> None:
    """Record that `cid` lost its monitor: the next pass decides and, if due, starts it."""
    _write(config, cid, 0, 0)


def clear(config, cid: str) -> bool:
    """Nothing is owed to `cid` any more (it started, or its policy says stay down); returns
    whether a restart was owed."""
    try:
        (_dir(config) / cid).unlink()
    except FileNotFoundError:
        return False
    return True


def failed(config, cid: str, before: int) -> float:
    """Count a failed start after `before` failed ones and back off; returns the seconds
    until the next try."""
    wait = min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2**before)
    _write(config, cid, before + 1, time.time() + wait)
    return wait


def owed(config) -> dict[str, int]:
    """{id: restarts failed so far} of the containers owed a restart whose back-off has passed."""
    try:
        names = os.listdir(_dir(config))
    except FileNotFoundError:
        return {}
    now = time.time()
    ready = {}
    for name in sorted(names):
        if name.startswith("."):
            continue  # write_json's temporary file
        try:
            entry = read_json(_dir(config) / name, None) or {}
        except ValueError:
            entry = {}  # torn by a crash: try now rather than never
        if float(entry.get("not_before") or 0) <= now:
            ready[name] = int(entry.get("failures") or 0)
    return ready
