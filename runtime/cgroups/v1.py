"""The cgroup v1 driver: one directory per controller hierarchy, <mount>/<prefix>/<cid>."""

from __future__ import annotations

import os
import signal
import stat

from runtime.cgroups.base import (
    CgroupStats,
    apply_limit,
    check_cid,
    existing_group,
    read,
    read_int,
    read_keyed,
    signal_pids,
    wait_until,
    write,
)
from runtime.cgroups.detect import Layout
from runtime.cgroups.devices import DeviceRule
from runtime.cgroups.driver import CgroupDriver
from runtime.config import RuntimeConfig
from runtime.errors import BerthError, InvalidSpec, KernelError
from runtime.spec import Limits

FREEZE_TIMEOUT = 5.0
# v1 reports "no limit" as the largest page-aligned value.
_V1_UNLIMITED = 1 << 62


def block_device(path: str) -> str:
    """MAJ:MIN of a host block device, for the throttle and io.max files."""
    try:
        st = os.stat(path)
    except OSError as err:
        raise InvalidSpec(f"throttle device {path}: {err.strerror}") from None
    if not stat.S_ISBLK(st.st_mode):
        raise InvalidSpec(f"throttle device {path} is not a block device")
    return f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"


class V1Driver(CgroupDriver):
    """cgroup v1: memory, cpu, cpuacct, cpuset, pids, blkio, freezer and devices hierarchies."""

    version = 1

    def __init__(self, config: RuntimeConfig, layout: Layout):
        super().__init__(config)
        self.mounts = dict(layout.mounts)
        # Co-mounted controllers (cpu,cpuacct) share one tree: make each directory once.
        self._trees = sorted(set(self.mounts.values()))

    def _parent_dirs(self) -> list[str]:
        return [f"{tree}/{self.prefix}" for tree in self._trees]

    def _group_dirs(self, cid: str) -> list[str]:
        return [f"{tree}/{self.prefix}/{cid}" for tree in self._trees]

    def _file(self, controller: str, cid: str, name: str, what: str) -> str:
        mount = self.mounts.get(controller)
        if mount is None:
            raise InvalidSpec(
                f"{what} cannot be applied: this host has no {controller} cgroup controller"
            )
        return f"{mount}/{self.prefix}/{cid}/{name}"

    def _prepare_parents(self, made: list[str]) -> None:
        for parent in self._parent_dirs():
            self._make_parent(parent, made)
        if "cpuset" in self.mounts:
            # A new v1 cpuset group starts with no cpus and no mems, and a process cannot
            # join such a group: give the parent the root's sets.
            parent = f"{self.mounts['cpuset']}/{self.prefix}"
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not read(f"{parent}/{name}"):
                    write(f"{parent}/{name}", read(f"{self.mounts['cpuset']}/{name}"))
            self._cpuset = (read(f"{parent}/cpuset.cpus"), read(f"{parent}/cpuset.mems"))

    def _write_limits(self, cid: str, limits: Limits, pids_limit: int) -> None:
        if limits.memory is not None:
            apply_limit(
                self._file("memory", cid, "memory.limit_in_bytes", "memory limit"),
                str(limits.memory),
                "memory limit",
            )
            # Docker's default without --memory-swap: as much swap as memory.
            swap = limits.memory_swap if limits.memory_swap is not None else 2 * limits.memory
            memsw = self._file("memory", cid, "memory.memsw.limit_in_bytes", "memory+swap limit")
            if limits.memory_swap not in (None, -1) or os.path.exists(memsw):
                apply_limit(memsw, str(swap), "memory+swap limit")
        if limits.cpu_shares is not None:
            apply_limit(
                self._file("cpu", cid, "cpu.shares", "cpu shares"),
                str(limits.cpu_shares),
                "cpu shares",
            )
        if limits.cpu_period is not None:
            apply_limit(
                self._file("cpu", cid, "cpu.cfs_period_us", "cpu period"),
                str(limits.cpu_period),
                "cpu period",
            )
        if limits.cpu_quota is not None:
            apply_limit(
                self._file("cpu", cid, "cpu.cfs_quota_us", "cpu quota"),
                str(limits.cpu_quota),
                "cpu quota",
            )
        if "cpuset" in self.mounts:
            group = f"{self.mounts['cpuset']}/{self.prefix}/{cid}"
            parent_cpus, parent_mems = self._cpuset
            apply_limit(f"{group}/cpuset.cpus", limits.cpuset_cpus or parent_cpus, "cpuset")
            apply_limit(f"{group}/cpuset.mems", parent_mems, "cpuset memory nodes")
        elif limits.cpuset_cpus:
            self._file("cpuset", cid, "cpuset.cpus", "cpuset")
        if pids_limit != -1 or "pids" in self.mounts:
            value = "max" if pids_limit == -1 else str(pids_limit)
            apply_limit(self._file("pids", cid, "pids.max", "pids limit"), value, "pids limit")
        if limits.blkio_weight is not None:
            apply_limit(
                self._file("blkio", cid, "blkio.weight", "blkio weight"),
                str(limits.blkio_weight),
                "blkio weight",
            )
        for key, name in (
            ("device_read_bps", "read_bps_device"),
            ("device_write_bps", "write_bps_device"),
            ("device_read_iops", "read_iops_device"),
            ("device_write_iops", "write_iops_device"),
        ):
            what = key.replace("_", " ")
            for dev in getattr(limits, key):
                path = self._file("blkio", cid, f"blkio.throttle.{name}", what)
                apply_limit(path, f"{block_device(dev.path)} {dev.rate}", f"{what} for {dev.path}")

    def _write_devices(self, cid: str, rules: list[DeviceRule], privileged: bool) -> None:
        if "devices" not in self.mounts:
            if privileged:
                return
            raise KernelError(
                "the devices cgroup controller is not mounted: cannot restrict devices"
            )
        group = f"{self.mounts['devices']}/{self.prefix}/{cid}"
        if privileged:
            write(f"{group}/devices.allow", "a")
            return
        write(f"{group}/devices.deny", "a")
        for rule in rules:
            apply_limit(f"{group}/devices.allow", str(rule), "device rule")

    # Freezer.
    def _freezer_state(self, cid: str) -> str:
        return read(self._file("freezer", cid, "freezer.state", "freeze"))

    def freeze(self, cid: str) -> None:
        """Freeze every process of the container and wait until the kernel reports FROZEN."""
        with existing_group(cid):
            path = self._file("freezer", check_cid(cid), "freezer.state", "freeze")

            def frozen() -> bool:
                if read(path) == "FROZEN":
                    return True
                # A task can slip past one freeze pass (e.g. while forking): ask again.
                write(path, "FROZEN")
                return False

            write(path, "FROZEN")
            if not wait_until(frozen, FREEZE_TIMEOUT):
                write(path, "THAWED")
                raise KernelError(f"container {cid} did not freeze within {FREEZE_TIMEOUT:g} s")

    def thaw(self, cid: str) -> None:
        """Let the container's processes run again."""
        with existing_group(cid):
            path = self._file("freezer", check_cid(cid), "freezer.state", "thaw")
            write(path, "THAWED")
            wait_until(lambda: read(path) == "THAWED", FREEZE_TIMEOUT)

    def is_frozen(self, cid: str) -> bool:
        """Whether the container is frozen or freezing."""
        with existing_group(cid):
            return self._freezer_state(check_cid(cid)) in ("FROZEN", "FREEZING")

    def _kill_everything(self, cid: str) -> None:
        # Frozen, nothing can fork between reading the pids and the kill.
        frozen = False
        if "freezer" in self.mounts:
            try:
                self.freeze(cid)
                frozen = True
            except BerthError:
                pass
        signal_pids(self._all_pids(cid), signal.SIGKILL)
        if frozen:
            self.thaw(cid)

    # Accounting.
    def stats(self, cid: str) -> CgroupStats:
        """CPU, memory, pids and block IO counters of the container."""
        check_cid(cid)
        mem = f"{self.mounts.get('memory')}/{self.prefix}/{cid}"
        limit = read_int(f"{mem}/memory.limit_in_bytes", None)
        pids = f"{self.mounts.get('pids')}/{self.prefix}/{cid}"
        read_bytes = write_bytes = 0
        try:
            text = read(
                f"{self.mounts.get('blkio')}/{self.prefix}/{cid}/blkio.throttle.io_service_bytes"
            )
        except FileNotFoundError:
            text = ""
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] == "Read":
                read_bytes += int(parts[2])
            elif len(parts) == 3 and parts[1] == "Write":
                write_bytes += int(parts[2])
        return CgroupStats(
            cpu_usage_ns=read_int(
                f"{self.mounts.get('cpuacct')}/{self.prefix}/{cid}/cpuacct.usage"
            ),
            memory_usage=read_int(f"{mem}/memory.usage_in_bytes"),
            memory_limit=None if limit is None or limit >= _V1_UNLIMITED else limit,
            memory_max_usage=read_int(f"{mem}/memory.max_usage_in_bytes"),
            pids_current=read_int(f"{pids}/pids.current"),
            pids_limit=read_int(f"{pids}/pids.max", None),
            blkio_read_bytes=read_bytes,
            blkio_write_bytes=write_bytes,
            oom_kills=read_keyed(f"{mem}/memory.oom_control").get("oom_kill", 0),
        )

    def oom_killed(self, cid: str) -> bool:
        """Whether the kernel's OOM killer killed a process of the container."""
        mem = self._file("memory", check_cid(cid), "memory.oom_control", "OOM status")
        return read_keyed(mem).get("oom_kill", 0) > 0
