"""The cgroup v2 driver against a fake tree: every value it writes, freeze, stats, destroy."""

import os
import stat

import pytest

from runtime.cgroups import DEFAULT_DEVICE_RULES, DeviceRule, v2
from runtime.errors import Conflict, InvalidSpec, KernelError, NotFound
from runtime.spec import Limits, ThrottleDevice


def _read(driver, cid, name):
    return open(f"{driver.parent}/{cid}/{name}").read()


def _block_device():
    for name in sorted(os.listdir("/dev")):
        path = f"/dev/{name}"
        try:
            st = os.stat(path)
        except OSError:
            continue
        if stat.S_ISBLK(st.st_mode):
            return path, f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    pytest.skip("no block device on this host")


def test_create_writes_every_limit(fake_v2):
    dev, majmin = _block_device()
    limits = Limits(
        memory=64 << 20,
        memory_swap=96 << 20,
        cpu_shares=512,
        cpu_quota=50000,
        cpu_period=100000,
        cpuset_cpus="0-1",
        pids=100,
        blkio_weight=500,
        device_read_bps=[ThrottleDevice(dev, 1048576)],
        device_write_bps=[ThrottleDevice(dev, 2097152)],
        device_write_iops=[ThrottleDevice(dev, 300)],
    )
    fake_v2.create("c1", limits)
    root = fake_v2.kernel.root
    assert (root / "cgroup.subtree_control").read_text() == "+cpu +cpuset +io +memory +pids"
    assert (
        root / fake_v2.prefix / "cgroup.subtree_control"
    ).read_text() == "+cpu +cpuset +io +memory +pids"
    assert _read(fake_v2, "c1", "memory.max") == str(64 << 20)
    assert _read(fake_v2, "c1", "memory.swap.max") == str(32 << 20)
    assert _read(fake_v2, "c1", "cpu.weight") == str(1 + ((512 - 2) * 9999) // 262142) == "20"
    assert _read(fake_v2, "c1", "cpu.max") == "50000 100000"
    assert _read(fake_v2, "c1", "cpuset.cpus") == "0-1"
    assert _read(fake_v2, "c1", "pids.max") == "100"
    assert _read(fake_v2, "c1", "io.weight") == f"default {1 + (490 * 9999) // 990}"
    assert _read(fake_v2, "c1", "io.max") == f"{majmin} rbps=1048576 wbps=2097152 wiops=300"
    assert fake_v2.kernel.attached[f"{fake_v2.parent}/c1"] == list(DEFAULT_DEVICE_RULES)
    assert fake_v2.list() == ["c1"]
    assert fake_v2.procs_files("c1") == [f"{fake_v2.parent}/c1/cgroup.procs"]


def test_defaults_pids_and_swap(fake_v2):
    fake_v2.create("c1", Limits(memory=32 << 20), default_pids=2048)
    assert _read(fake_v2, "c1", "pids.max") == "2048"
    # Docker's default: as much swap as memory.
    assert _read(fake_v2, "c1", "memory.swap.max") == str(32 << 20)
    assert _read(fake_v2, "c1", "cpu.max") == ""  # untouched when not asked for
    fake_v2.create("c2", Limits(pids=-1, memory=32 << 20, memory_swap=-1, cpu_period=50000))
    assert _read(fake_v2, "c2", "pids.max") == "max"
    assert _read(fake_v2, "c2", "memory.swap.max") == "max"
    assert _read(fake_v2, "c2", "cpu.max") == "max 50000"
    fake_v2.create("c3", None)
    assert _read(fake_v2, "c3", "pids.max") == str(fake_v2.config.default_pids_limit)


def test_privileged_and_extra_devices(fake_v2):
    fake_v2.create("priv", privileged=True)
    assert f"{fake_v2.parent}/priv" not in fake_v2.kernel.attached
    fake_v2.create("dev", devices=["c 10:200 rwm", DeviceRule("b", 8, 0, "r")])
    rules = fake_v2.kernel.attached[f"{fake_v2.parent}/dev"]
    assert rules[-2:] == [DeviceRule("c", 10, 200, "rwm"), DeviceRule("b", 8, 0, "r")]


def test_missing_controller_is_refused_and_leaves_nothing(fake_v2):
    (fake_v2.kernel.root / "cgroup.controllers").write_text("cpu pids")
    with pytest.raises(InvalidSpec, match="memory limit .* no memory controller"):
        fake_v2.create("c1", Limits(memory=64 << 20))
    assert not os.path.exists(f"{fake_v2.parent}/c1")
    assert fake_v2.list() == []


def test_missing_swap_file_only_matters_when_asked(fake_v2):
    fake_v2.create("c1", Limits(memory=64 << 20))
    fake_v2.destroy("c1")
    original = fake_v2.kernel.mkdir

    def mkdir_without_swap(path):
        original(path)
        os.unlink(f"{path}/memory.swap.max")

    fake_v2._mkdir = mkdir_without_swap
    fake_v2.create("c2", Limits(memory=64 << 20))  # no swap accounting: Docker's default is skipped
    assert _read(fake_v2, "c2", "memory.max") == str(64 << 20)
    with pytest.raises(InvalidSpec, match="memory\\+swap limit cannot be applied"):
        fake_v2.create("c3", Limits(memory=64 << 20, memory_swap=128 << 20))
    assert not os.path.exists(f"{fake_v2.parent}/c3")


def test_device_attach_failure_rolls_back(fake_v2):
    def refuse(group, rules):
        raise KernelError("cannot attach the device filter")

    fake_v2._attach_devices = refuse
    with pytest.raises(KernelError):
        fake_v2.create("c1", Limits(memory=64 << 20))
    assert fake_v2.list() == []


def test_throttle_on_a_non_block_device_is_refused(fake_v2):
    with pytest.raises(InvalidSpec, match="not a block device"):
        fake_v2.create("c1", Limits(device_read_bps=[ThrottleDevice("/dev/null", 10)]))
    assert fake_v2.list() == []


def test_leftover_empty_group_is_replaced_busy_one_conflicts(fake_v2):
    fake_v2.create("c1", Limits(pids=10))
    fake_v2.create("c1", Limits(pids=20))
    assert _read(fake_v2, "c1", "pids.max") == "20"
    with open(f"{fake_v2.parent}/c1/cgroup.procs", "w") as procs:
        procs.write(f"{os.getpid()}\n")
    with pytest.raises(Conflict):
        fake_v2.create("c1", Limits(pids=30))
    assert _read(fake_v2, "c1", "pids.max") == "20"


def test_freeze_and_thaw_write_cgroup_freeze(fake_v2, monkeypatch):
    fake_v2.create("c1")
    events = f"{fake_v2.parent}/c1/cgroup.events"
    with open(events, "w") as f:
        f.write("populated 1\nfrozen 1\n")
    fake_v2.freeze("c1")
    assert _read(fake_v2, "c1", "cgroup.freeze") == "1"
    assert fake_v2.is_frozen("c1")
    with open(events, "w") as f:
        f.write("populated 1\nfrozen 0\n")
    fake_v2.thaw("c1")
    assert _read(fake_v2, "c1", "cgroup.freeze") == "0"
    assert not fake_v2.is_frozen("c1")
    # A group that never reports frozen: the freeze is undone and reported.
    monkeypatch.setattr(v2, "FREEZE_TIMEOUT", 0.05)
    with pytest.raises(KernelError, match="did not freeze"):
        fake_v2.freeze("c1")
    assert _read(fake_v2, "c1", "cgroup.freeze") == "0"


def test_stats_are_parsed(fake_v2):
    fake_v2.create("c1", Limits(memory=64 << 20, pids=100))
    samples = {
        "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
        "memory.current": "1048576\n",
        "memory.max": "67108864\n",
        "memory.peak": "2097152\n",
        "pids.current": "3\n",
        "pids.max": "100\n",
        "io.stat": "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n"
        "8:16 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n",
        "memory.events": "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\noom_group_kill 0\n",
    }
    for name, content in samples.items():
        with open(f"{fake_v2.parent}/c1/{name}", "w") as f:
            f.write(content)
    stats = fake_v2.stats("c1")
    assert stats.cpu_usage_ns == 1_500_000
    assert (stats.memory_usage, stats.memory_limit, stats.memory_max_usage) == (
        1048576,
        64 << 20,
        2097152,
    )
    assert (stats.pids_current, stats.pids_limit) == (3, 100)
    assert (stats.blkio_read_bytes, stats.blkio_write_bytes) == (4097, 8194)
    assert stats.oom_kills == 1
    assert fake_v2.oom_killed("c1")
    with open(f"{fake_v2.parent}/c1/memory.max", "w") as f:
        f.write("max\n")
    assert fake_v2.stats("c1").memory_limit is None


def test_oom_killed_false_without_kills(fake_v2):
    fake_v2.create("c1", Limits(memory=64 << 20))
    with open(f"{fake_v2.parent}/c1/memory.events", "w") as f:
        f.write("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")
    assert not fake_v2.oom_killed("c1")


def test_destroy_removes_and_is_idempotent(fake_v2):
    fake_v2.create("c1")
    fake_v2.create("c2")
    fake_v2.destroy("c1")
    assert fake_v2.list() == ["c2"]
    fake_v2.destroy("c1")
    fake_v2.destroy("never-made")
    assert not os.path.exists(f"{fake_v2.parent}/c1")


def test_verbs_on_a_missing_group_are_not_found(fake_v2):
    for verb in (fake_v2.freeze, fake_v2.thaw, fake_v2.is_frozen):
        with pytest.raises(NotFound, match="no cgroup for container ghost"):
            verb("ghost")
    with pytest.raises(NotFound):
        fake_v2.add_process("ghost", os.getpid())
    assert fake_v2.pids("ghost") == []
