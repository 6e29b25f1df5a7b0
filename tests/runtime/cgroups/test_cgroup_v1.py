"""The cgroup v1 driver on this host's real hierarchies, with real processes."""

import errno
import os
import signal
import subprocess
import sys

import pytest

from runtime.cgroups.devices import DEFAULT_DEVICE_RULES
from runtime.errors import Conflict, InvalidSpec, NotFound
from runtime.spec import Limits, ThrottleDevice

pytestmark = pytest.mark.root


def _read(driver, controller, cid, name):
    with open(f"{driver.mounts[controller]}/{driver.prefix}/{cid}/{name}") as f:
        return f.read().strip()


def _left(driver, cid):
    """Directories of the container's group that still exist, in any hierarchy."""
    return [d for d in driver._group_dirs(cid) if os.path.exists(d)]


def _root_disk():
    """The whole disk under /, as a /dev path (throttling applies to disks, not partitions)."""
    st = os.stat("/")
    sys_dev = os.path.realpath(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}")
    if not os.path.exists(sys_dev):
        pytest.skip("/ is not on a block device")
    if os.path.exists(f"{sys_dev}/partition"):
        sys_dev = os.path.dirname(sys_dev)
    path = f"/dev/{os.path.basename(sys_dev)}"
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist")
    with open(f"{sys_dev}/dev") as f:
        return path, f.read().strip()


def _python(code):
    return [sys.executable, "-c", code]


def test_create_writes_limits(v1):
    disk, majmin = _root_disk()
    limits = Limits(
        memory=64 << 20,
        cpu_shares=512,
        cpu_quota=50000,
        cpu_period=100000,
        cpuset_cpus="0",
        pids=100,
        device_read_bps=[ThrottleDevice(disk, 1048576)],
        device_write_iops=[ThrottleDevice(disk, 300)],
    )
    v1.create("c1", limits)
    assert _read(v1, "memory", "c1", "memory.limit_in_bytes") == str(64 << 20)
    if "memory.memsw.limit_in_bytes" in os.listdir(f"{v1.mounts['memory']}/{v1.prefix}/c1"):
        assert _read(v1, "memory", "c1", "memory.memsw.limit_in_bytes") == str(128 << 20)
    assert _read(v1, "cpu", "c1", "cpu.shares") == "512"
    assert _read(v1, "cpu", "c1", "cpu.cfs_quota_us") == "50000"
    assert _read(v1, "cpu", "c1", "cpu.cfs_period_us") == "100000"
    assert _read(v1, "cpuset", "c1", "cpuset.cpus") == "0"
    assert _read(v1, "cpuset", "c1", "cpuset.mems") == _read(v1, "cpuset", "", "cpuset.mems")
    assert _read(v1, "pids", "c1", "pids.max") == "100"
    assert _read(v1, "blkio", "c1", "blkio.throttle.read_bps_device") == f"{majmin} 1048576"
    assert _read(v1, "blkio", "c1", "blkio.throttle.write_iops_device") == f"{majmin} 300"
    assert _read(v1, "devices", "c1", "devices.list").splitlines() == [
        str(r) for r in DEFAULT_DEVICE_RULES
    ]
    assert v1.list() == ["c1"]
    assert all(os.path.exists(p) for p in v1.procs_files("c1"))
    assert len(v1.procs_files("c1")) == len(set(v1.mounts.values()))


def test_defaults_pids_unlimited_and_privileged(v1):
    v1.create("c1", Limits(), default_pids=512)
    assert _read(v1, "pids", "c1", "pids.max") == "512"
    v1.create("c2", Limits(pids=-1), privileged=True)
    assert _read(v1, "pids", "c2", "pids.max") == "max"
    assert _read(v1, "devices", "c2", "devices.list") == "a *:* rwm"
    v1.create("c3")
    assert _read(v1, "pids", "c3", "pids.max") == str(v1.config.default_pids_limit)
    v1.create("c4", Limits(memory=64 << 20, memory_swap=-1))
    if os.path.exists(f"{v1.mounts['memory']}/{v1.prefix}/c4/memory.memsw.limit_in_bytes"):
        unlimited = _read(v1, "memory", "", "memory.memsw.limit_in_bytes")
        assert _read(v1, "memory", "c4", "memory.memsw.limit_in_bytes") == unlimited
    assert v1.list() == ["c1", "c2", "c3", "c4"]


def test_process_added_is_in_the_group(v1, procs):
    v1.create("c1", Limits(memory=64 << 20))
    proc = procs(v1, "c1", ["sleep", "1000"])
    assert v1.pids("c1") == [proc.pid]
    other = procs(v1, "c1", ["sleep", "1000"])
    assert sorted(v1.pids("c1")) == sorted([proc.pid, other.pid])
    v1.create("c2")
    v1.add_process("c2", other.pid)
    assert v1.pids("c1") == [proc.pid]
    assert v1.pids("c2") == [other.pid]
    with open(f"/proc/{other.pid}/cgroup") as f:
        lines = f.read().splitlines()
    memory_line = next(line for line in lines if line.split(":")[1] == "memory")
    assert memory_line.endswith(f"/{v1.prefix}/c2")
    with pytest.raises(NotFound):
        v1.add_process("missing", other.pid)


def test_add_process_of_a_gone_pid_is_not_found(v1, procs):
    v1.create("c1")
    proc = procs(v1, "c1", ["true"])
    proc.wait()
    with pytest.raises(NotFound, match=f"no process {proc.pid}"):
        v1.add_process("c1", proc.pid)


def test_freeze_and_thaw_a_real_process(v1, procs):
    v1.create("c1")
    proc = procs(v1, "c1", ["sleep", "1000"])
    v1.freeze("c1")
    assert v1.is_frozen("c1")
    assert _read(v1, "freezer", "c1", "freezer.state") == "FROZEN"
    # A frozen process cannot act on SIGKILL until it is thawed.
    os.kill(proc.pid, signal.SIGKILL)
    assert v1.pids("c1") == [proc.pid]
    assert proc.poll() is None
    v1.thaw("c1")
    assert not v1.is_frozen("c1")
    assert proc.wait(timeout=10) == -signal.SIGKILL
    assert v1.pids("c1") == []


def test_stats_of_a_busy_process(v1, procs, tmp_path):
    v1.create("c1", Limits(memory=128 << 20, pids=50))
    code = (
        "import sys, time\n"
        "b = b'x' * (20 << 20)\n"
        "sum(range(2000000))\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = procs(v1, "c1", _python(code), stdin=subprocess.PIPE)
    assert proc.stdout.readline() == b"ready\n"
    dd = procs(
        v1,
        "c1",
        ["dd", "if=/dev/zero", f"of={tmp_path}/direct", "bs=64k", "count=16", "oflag=direct"],
    )
    assert dd.wait(timeout=30) == 0
    stats = v1.stats("c1")
    assert stats.memory_usage >= 20 << 20
    assert stats.memory_max_usage >= stats.memory_usage
    assert stats.memory_limit == 128 << 20
    assert stats.cpu_usage_ns > 0
    assert stats.pids_current == 1
    assert stats.pids_limit == 50
    assert stats.blkio_write_bytes >= 1 << 20
    assert stats.oom_kills == 0
    assert not v1.oom_killed("c1")


def test_unlimited_memory_reads_as_none(v1):
    v1.create("c1", Limits(pids=-1))
    stats = v1.stats("c1")
    assert stats.memory_limit is None
    assert stats.pids_limit is None
    assert stats.pids_current == 0


def test_kill_all_signals_every_process(v1, procs):
    v1.create("c1")
    first = procs(v1, "c1", ["sleep", "1000"])
    second = procs(v1, "c1", ["sleep", "1000"])
    v1.kill_all("c1", "TERM")
    assert first.wait(timeout=10) == -signal.SIGTERM
    assert second.wait(timeout=10) == -signal.SIGTERM
    assert v1.pids("c1") == []
    with pytest.raises(InvalidSpec, match="invalid signal"):
        v1.kill_all("c1", "NOPE")


def test_destroy_kills_everything_and_leaves_nothing(v1, procs):
    v1.create("c1", Limits(memory=64 << 20, pids=20))
    # A shell that ignores SIGTERM with a child of its own: destroy still removes both.
    shell = procs(v1, "c1", ["sh", "-c", "trap '' TERM; sleep 1000 & sleep 1000; wait"])
    v1.create("c2")
    while len(v1.pids("c1")) < 3:
        assert shell.poll() is None
    v1.destroy("c1")
    assert shell.wait(timeout=10) == -signal.SIGKILL
    assert _left(v1, "c1") == []
    assert v1.list() == ["c2"]
    v1.destroy("c1")  # idempotent
    v1.destroy("c2")
    assert v1.list() == []


def test_destroy_of_a_frozen_container(v1, procs):
    v1.create("c1")
    proc = procs(v1, "c1", ["sleep", "1000"])
    v1.freeze("c1")
    v1.destroy("c1")
    assert proc.wait(timeout=10) == -signal.SIGKILL
    assert _left(v1, "c1") == []


def test_refused_cpuset_leaves_nothing(v1):
    with pytest.raises(InvalidSpec, match="invalid cpuset '99'"):
        v1.create("c1", Limits(memory=64 << 20, cpuset_cpus="99"))
    assert _left(v1, "c1") == []
    assert v1.list() == []


def test_memory_below_minimum_leaves_nothing(v1):
    with pytest.raises(InvalidSpec, match="minimum memory"):
        v1.create("c1", Limits(memory=1 << 20))
    assert _left(v1, "c1") == []


def test_throttling_a_character_device_leaves_nothing(v1):
    with pytest.raises(InvalidSpec, match="not a block device"):
        v1.create("c1", Limits(device_write_bps=[ThrottleDevice("/dev/null", 1000)]))
    assert _left(v1, "c1") == []


def test_blkio_weight_is_applied_or_refused_clearly(v1):
    weight_file = f"{v1.mounts['blkio']}/blkio.weight"
    if os.path.exists(weight_file):
        v1.create("c1", Limits(blkio_weight=300))
        assert _read(v1, "blkio", "c1", "blkio.weight") == "300"
    else:
        # No CFQ/BFQ weight on this host: never silently ignored.
        with pytest.raises(InvalidSpec, match="blkio weight cannot be applied"):
            v1.create("c1", Limits(blkio_weight=300))
        assert _left(v1, "c1") == []


def test_leftover_group_is_replaced_busy_one_conflicts(v1, procs):
    v1.create("c1", Limits(pids=10))
    v1.create("c1", Limits(pids=20))
    assert _read(v1, "pids", "c1", "pids.max") == "20"
    procs(v1, "c1", ["sleep", "1000"])
    with pytest.raises(Conflict):
        v1.create("c1", Limits(pids=30))
    assert _read(v1, "pids", "c1", "pids.max") == "20"


def test_memory_hog_is_oom_killed(v1, procs):
    v1.create("c1", Limits(memory=32 << 20, memory_swap=32 << 20))
    hog = procs(v1, "c1", _python("b = b'x' * (256 << 20)"))
    assert hog.wait(timeout=60) == -signal.SIGKILL
    assert v1.oom_killed("c1")
    assert v1.stats("c1").oom_kills >= 1


def test_fork_bomb_stops_at_the_pids_limit(v1, procs):
    v1.create("c1", Limits(pids=8))
    code = (
        "import os\n"
        "n = 0\n"
        "try:\n"
        "    for _ in range(100):\n"
        "        if os.fork() == 0:\n"
        "            os.pause()\n"
        "        n += 1\n"
        "except OSError as err:\n"
        "    print(n, err.errno, flush=True)\n"
    )
    bomb = procs(v1, "c1", _python(code))
    out, _ = bomb.communicate(timeout=60)
    forked, err = map(int, out.split())
    assert err == errno.EAGAIN
    assert forked == 7  # the bomb itself is the eighth
    assert v1.stats("c1").pids_current == 7
    v1.destroy("c1")
    assert _left(v1, "c1") == []


def test_devices_outside_the_allow_list_are_refused(v1, procs):
    opener = _python(
        "import sys\n"
        "for path, mode in (('/dev/null', 'rb'), ('/dev/kmsg', 'rb'), ('/dev/kmsg', 'wb')):\n"
        "    try:\n"
        "        open(path, mode, buffering=0).close(); print(path, mode, 'ok')\n"
        "    except PermissionError:\n"
        "        print(path, mode, 'denied')\n"
    )
    v1.create("plain")
    v1.create("extra", devices=["c 1:11 r"])
    v1.create("priv", privileged=True)
    results = {}
    for cid in ("plain", "extra", "priv"):
        out, _ = procs(v1, cid, opener).communicate(timeout=30)
        results[cid] = out.decode().splitlines()
    assert results["plain"] == ["/dev/null rb ok", "/dev/kmsg rb denied", "/dev/kmsg wb denied"]
    assert results["extra"] == ["/dev/null rb ok", "/dev/kmsg rb ok", "/dev/kmsg wb denied"]
    assert results["priv"] == ["/dev/null rb ok", "/dev/kmsg rb ok", "/dev/kmsg wb ok"]


def test_destroy_removes_nested_groups_with_processes(v1, procs):
    v1.create("c1")
    proc = procs(v1, "c1", ["sleep", "1000"])
    nested = f"{v1.mounts['memory']}/{v1.prefix}/c1/inner"
    os.mkdir(nested)
    v1.add_process("c1", proc.pid)
    with open(f"{nested}/cgroup.procs", "w") as f:
        f.write(str(proc.pid))
    assert v1.pids("c1") == [proc.pid]
    v1.destroy("c1")
    assert proc.wait(timeout=10) == -signal.SIGKILL
    assert _left(v1, "c1") == []


def test_parent_removed_behind_the_drivers_back_is_made_again(v1):
    v1.create("c1")
    v1.destroy("c1")
    for parent in v1._parent_dirs():
        os.rmdir(parent)
    v1.create("c2", Limits(cpuset_cpus="0"))
    assert _read(v1, "cpuset", "c2", "cpuset.cpus") == "0"
    assert v1.list() == ["c2"]


def test_freeze_of_a_missing_group_is_not_found(v1):
    with pytest.raises(NotFound, match="no cgroup for container ghost"):
        v1.freeze("ghost")
    with pytest.raises(NotFound):
        v1.is_frozen("ghost")
