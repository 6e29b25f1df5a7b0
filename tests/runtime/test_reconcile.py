"""After a reboot (run_root gone, shims dead) reconcile() marks containers stopped, nothing dangles."""

import os
import shutil
import signal

import pytest

from runtime.container.fsutil import read_json
from runtime.container.launch import wait_gone

pytestmark = pytest.mark.root


def test_reconcile_after_simulated_reboot(rt, base_spec):
    st = rt.run(base_spec)
    cid = st["id"]
    shim = read_json(rt.store.paths(cid).shim_file)
    # What a reboot does: every process gone, /run wiped.
    os.kill(shim["shim"], signal.SIGKILL)
    os.kill(st["pid"], signal.SIGKILL)
    wait_gone(shim["shim"])
    shutil.rmtree(rt.store.paths(cid).run_dir)
    assert cid in rt.reconcile()
    st = rt.state(cid)
    assert st["status"] == "stopped"
    assert st["exit_code"] == 255
    assert rt.reconcile() == []  # nothing left to repair
    st = rt.start(cid)  # and it can run again
    assert st["status"] == "running"
    rt.delete(cid, force=True)
    assert cid not in rt.cgroups.list()


def test_reconcile_kills_a_ghost(rt, base_spec):
    st = rt.run(base_spec)
    cid = st["id"]
    shim = read_json(rt.store.paths(cid).shim_file)
    os.kill(shim["shim"], signal.SIGKILL)  # the monitor dies, the program lives on
    wait_gone(shim["shim"])
    assert cid in rt.reconcile()
    assert rt.state(cid)["status"] == "stopped"
    assert rt.cgroups.pids(cid) == []
