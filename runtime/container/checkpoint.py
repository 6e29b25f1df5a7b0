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
