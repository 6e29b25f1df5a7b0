"""The cgroup v1 driver on a fake tree: hosts that lack a file or a whole controller."""

import os
import shutil

import pytest

from runtime.cgroups import driver_for
from runtime.config import RuntimeConfig
from runtime.errors import InvalidSpec
from runtime.spec import Limits

_FILES = {
    "memory": ("memory.limit_in_bytes", "memory.oom_control"),
    "cpu": ("cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us"),
    "cpuacct": ("cpuacct.usage",),
    "cpuset": ("cpuset.cpus", "cpuset.mems"),
    "pids": ("pids.max", "pids.current"),
    "blkio": ("blkio.throttle.read_bps_device",),
    "freezer": ("freezer.state",),
    "devices": ("devices.allow", "devices.deny"),
}


@pytest.fixture
def fake_v1(tmp_path):
    """A V1Driver on regular files: no memsw (no swap accounting), no blkio.weight, no pids."""
    root = tmp_path / "cgroup"
    for controller in _FILES:
        if controller == "pids":
            continue
        (root / controller).mkdir(parents=True)
        (root / controller / "cgroup.procs").write_text("")
    (root / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (root / "cpuset" / "cpuset.mems").write_text("0\n")
    driver = driver_for(RuntimeConfig(prefix="tcgfake", cgroup_root=root))

    def mkdir(path):
        os.mkdir(path)
        controller = os.path.relpath(path, root).split(os.sep)[0]
        for name in ("cgroup.procs", *_FILES[controller]):
            with open(f"{path}/{name}", "w"):
                pass

    driver._mkdir = mkdir
    driver._rmdir = shutil.rmtree
    return driver


def _read(driver, controller, cid, name):
    with open(f"{driver.mounts[controller]}/tcgfake/{cid}/{name}") as f:
        return f.read()


def test_swap_default_skipped_without_memsw_explicit_refused(fake_v1):
    fake_v1.create("c1", Limits(memory=64 << 20, pids=-1))
    assert _read(fake_v1, "memory", "c1", "memory.limit_in_bytes") == str(64 << 20)
    # The parent got the root's cpus and mems, the child the parent's.
    assert _read(fake_v1, "cpuset", "", "cpuset.cpus") == "0-1"
    assert _read(fake_v1, "cpuset", "c1", "cpuset.mems") == "0"
    with pytest.raises(InvalidSpec, match="memory\\+swap limit cannot be applied.*memsw"):
        fake_v1.create("c2", Limits(memory=64 << 20, memory_swap=128 << 20, pids=-1))
    assert fake_v1.list() == ["c1"]


def test_missing_controller_refuses_its_limit(fake_v1):
    with pytest.raises(InvalidSpec, match="pids limit cannot be applied: this host has no pids"):
        fake_v1.create("c1", Limits(pids=100))
    with pytest.raises(InvalidSpec, match="pids limit"):
        fake_v1.create("c1", Limits())  # the default limit is a limit too
    assert fake_v1.list() == []


def test_missing_blkio_weight_is_refused(fake_v1):
    with pytest.raises(
        InvalidSpec,
        match="blkio weight cannot be applied on this host: blkio.weight does not exist",
    ):
        fake_v1.create("c1", Limits(blkio_weight=500, pids=-1))
    assert fake_v1.list() == []


def test_device_rules_written_deny_first(fake_v1):
    fake_v1.create("c1", Limits(pids=-1))
    # Regular files keep only the last write: deny "a" went first, then every allow rule.
    assert _read(fake_v1, "devices", "c1", "devices.deny") == "a"
    assert _read(fake_v1, "devices", "c1", "devices.allow").startswith("c 136:* rwm")
