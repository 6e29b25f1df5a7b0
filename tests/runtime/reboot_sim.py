"""Simulate what a host crash or reboot does to a runtime: monitors and processes gone, /run empty."""

import contextlib
import os
import shutil
import signal

from runtime.container.fsutil import read_json
from runtime.container.launch import wait_gone


def kill_monitor(rt, cid: str) -> dict:
    """SIGKILL only the container's shim (its program runs on); returns the old shim record."""
    shim = read_json(rt.store.paths(cid).shim_file, {}) or {}
    if shim.get("shim"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(shim["shim"], signal.SIGKILL)
        wait_gone(shim["shim"])
    return shim


def kill_monitor_and_process(rt, cid: str) -> dict:
    """What a crash of the host does to one container: shim and every process gone."""
    shim = kill_monitor(rt, cid)
    if shim.get("pid"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(shim["pid"], signal.SIGKILL)
    with contextlib.suppress(Exception):
        rt.cgroups.kill_all(cid, signal.SIGKILL)
    wait_gone(shim.get("pid"))
    return shim


def reboot(rt) -> None:
    """Kill every shim and container process of `rt`, then empty its run directory."""
    for cid in rt.store.ids():
        kill_monitor_and_process(rt, cid)
    shutil.rmtree(rt.config.run_root, ignore_errors=True)
    rt.config.run_root.mkdir(parents=True)
