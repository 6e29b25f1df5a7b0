"""The cgroup v2 driver on this host's real cgroup2 mount: BPF device filter, freezer, kill.

On a hybrid host the cgroup2 mount offers no resource controllers, but the v2 core files
(cgroup.freeze, cgroup.kill, cgroup.events) and BPF device programs work there for real.
"""

import os
import signal
import sys

import pytest

from runtime.cgroups.base import wait_until
from runtime.errors import InvalidSpec
from runtime.spec import Limits

pytestmark = pytest.mark.root

OPENER = [
    sys.executable,
    "-c",
    "for path, mode in (('/dev/null', 'rb'), ('/dev/zero', 'rb'), ('/dev/kmsg', 'rb'), ('/dev/kmsg', 'wb')):\n"
    "    try:\n"
    "        open(path, mode, buffering=0).close(); print(path, mode, 'ok')\n"
    "    except PermissionError:\n"
    "        print(path, mode, 'denied')\n",
]


def _opens(procs, driver, cid):
    out, err = procs(driver, cid, OPENER).communicate(timeout=30)
    assert err == b""
    return out.decode().splitlines()


def test_detected_as_v2(unified):
    assert unified.version == 2


def test_bpf_device_filter_is_enforced(unified, procs):
    unified.create("plain", _no_pids())
    unified.create("extra", _no_pids(), devices=["c 1:11 r"])
    unified.create("priv", _no_pids(), privileged=True)
    assert _opens(procs, unified, "plain") == [
        "/dev/null rb ok",
        "/dev/zero rb ok",
        "/dev/kmsg rb denied",
        "/dev/kmsg wb denied",
    ]
    assert _opens(procs, unified, "extra") == [
        "/dev/null rb ok",
        "/dev/zero rb ok",
        "/dev/kmsg rb ok",
        "/dev/kmsg wb denied",
    ]
    assert _opens(procs, unified, "priv") == [
        "/dev/null rb ok",
        "/dev/zero rb ok",
        "/dev/kmsg rb ok",
        "/dev/kmsg wb ok",
    ]


def test_mknod_is_allowed_but_use_is_not(unified, procs, tmp_path):
    unified.create("c1", _no_pids())
    node = tmp_path / "kmsg"
    code = (
        "import os, stat, sys\n"
        f"os.mknod({str(node)!r}, stat.S_IFCHR | 0o600, os.makedev(1, 11))\n"
        "try:\n"
        f"    open({str(node)!r}, 'rb').close(); print('opened')\n"
        "except PermissionError:\n"
        "    print('denied')\n"
    )
    out, _ = procs(unified, "c1", [sys.executable, "-c", code]).communicate(timeout=30)
    assert out == b"denied\n"
    assert node.exists()


def test_limits_without_a_controller_are_refused(unified):
    offered = _read(f"{unified.root}/cgroup.controllers").split()
    if "memory" in offered:
        pytest.skip("this cgroup2 mount has the memory controller")
    with pytest.raises(InvalidSpec, match="no memory controller"):
        unified.create("c1", _limits(memory=64 << 20, pids=-1))
    assert not os.path.exists(f"{unified.parent}/c1")


def test_freeze_thaw_and_cgroup_kill(unified, procs):
    unified.create("c1", _no_pids())
    proc = procs(unified, "c1", ["sleep", "1000"])
    unified.freeze("c1")
    assert unified.is_frozen("c1")
    assert "frozen 1" in _read(f"{unified.parent}/c1/cgroup.events")
    # A frozen task acts on no signal but fatal ones (v2 lets those through): SIGSTOP waits.
    os.kill(proc.pid, signal.SIGSTOP)
    assert _state(proc.pid) != "T"
    assert wait_until(lambda: _read(f"{unified.parent}/c1/cgroup.events").endswith("frozen 1"), 10)
    unified.thaw("c1")
    assert not unified.is_frozen("c1")
    assert wait_until(lambda: _state(proc.pid) == "T", 10)
    proc.kill()
    assert proc.wait(timeout=10) == -signal.SIGKILL
    other = procs(unified, "c1", ["sleep", "1000"])
    unified.kill_all("c1")  # SIGKILL through cgroup.kill
    assert other.wait(timeout=10) == -signal.SIGKILL


def test_destroy_with_running_processes_leaves_nothing(unified, procs):
    unified.create("c1", _no_pids())
    proc = procs(unified, "c1", ["sh", "-c", "trap '' TERM; sleep 1000"])
    unified.destroy("c1")
    assert proc.wait(timeout=10) == -signal.SIGKILL
    assert not os.path.exists(f"{unified.parent}/c1")
    assert unified.list() == []
    unified.destroy("c1")


def _read(path):
    with open(path) as f:
        return f.read().strip()


def _state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()[0]


def _limits(**kwargs):
    return Limits(**kwargs)


def _no_pids():
    # Without a pids controller in this mount, only "unlimited" can be honoured.
    return _limits(pids=-1)
