"""A test hook: stop a process at a named step so a test can kill it there (off by default)."""

from __future__ import annotations

import os
import time

ENV_STEP = "BERTH_TEST_PAUSE_AT"
ENV_FIFO = "BERTH_TEST_PAUSE_FIFO"


def pause_at(step: str) -> None:
    """If BERTH_TEST_PAUSE_AT names `step`: announce it on the FIFO, then wait to be killed."""
    if os.environ.get(ENV_STEP) != step:
        return
    # Opening the FIFO blocks until the test reads it: the test then knows where we stand.
    with open(os.environ[ENV_FIFO], "w") as fifo:
        fifo.write(step + "\n")
    while True:
        time.sleep(3600)


# Phase marks of a migration (label, CLOCK_MONOTONIC): both hosts of this machine share the
# clock, so a profile (bench/criu_phases.py) lines the source's and the target's marks up.
# Off unless BERTH_MIGRATE_TRACE is set: then kept in this process and printed at the end.
TRACE: list[tuple[str, float]] = []


def mark(label: str) -> None:
    """Record `label` with the time now, when tracing is on."""
    mark_at(label, time.monotonic())


def mark_at(label: str, when: float) -> None:
    """Record `label` at `when` (a time another process took), when tracing is on (a path
    in BERTH_MIGRATE_TRACE: appended there as well, for the agents of a fleet)."""
    where = os.environ.get("BERTH_MIGRATE_TRACE")
    if where:
        TRACE.append((label, when))
        if where.startswith("/"):
            with open(where, "a") as f:
                f.write(f"{when:.6f} {os.getpid()} {label}\n")
