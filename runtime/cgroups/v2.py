"""The cgroup v2 driver: one unified tree, <root>/<prefix>/<cid>, devices through BPF."""

from __future__ import annotations

import contextlib
import os
import signal

from runtime.cgroups import bpf
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
from runtime.cgroups.v1 import block_device
from runtime.config import RuntimeConfig
from runtime.errors import BerthError, InvalidSpec, KernelError
from runtime.signals import parse_signal
from runtime.spec import Limits

FREEZE_TIMEOUT = 5.0
# Controllers enabled for the containers below the parent, when the host offers them.
WANTED = ("cpu", "cpuset", "io", "memory", "pids")


def shares_to_weight(shares: int) -> int:
    """cpu.shares (2..262144) to cpu.weight (1..10000), the conversion runc uses."""
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_to_io_weight(weight: int) -> int:
    """blkio.weight (10..1000) to io.weight (1..10000), the conversion runc uses."""
    return 1 + ((weight - 10) * 9999) // 990


class V2Driver(CgroupDriver):
    """Pure cgroup v2: limits in the unified tree, freezing via cgroup.freeze."""

    version = 2

    def __init__(self, config: RuntimeConfig, layout: Layout):
        super().__init__(config)
        self.root = layout.root
        self.parent = f"{self.root}/{self.prefix}"

    def _attach_devices(self, group: str, rules: list[DeviceRule]) -> None:
        """Kernel-facing hook: load and attach the BPF device filter."""
        bpf.attach_device_filter(group, rules)

    def _parent_dirs(self) -> list[str]:
        return [self.parent]

    def _group_dirs(self, cid: str) -> list[str]:
        return [f"{self.parent}/{cid}"]

    def _enable(self, group: str) -> set[str]:
        """Enable the wanted controllers the group offers for its children; return them."""
        offered = read(f"{group}/cgroup.controllers").split()
        enabled = read(f"{group}/cgroup.subtree_control").split()
        missing = [c for c in WANTED if c in offered and c not in enabled]
        if missing:
            try:
                write(f"{group}/cgroup.subtree_control", " ".join("+" + c for c in missing))
            except OSError as err:
                raise KernelError(
                    f"cannot enable cgroup controllers {', '.join(missing)} in {group}: {err.strerror}"
                ) from err
        return set(enabled) | set(missing)

    def _prepare_parents(self, made: list[str]) -> None:
        self._enable(self.root)
        self._make_parent(self.parent, made)
        self._enabled = self._enable(self.parent)

    def _need(self, controller: str, what: str) -> None:
        if controller not in self._enabled:
            raise InvalidSpec(
                f"{what} cannot be applied: this host's cgroup v2 has no {controller} controller"
            )

    def _write_limits(self, cid: str, limits: Limits, pids_limit: int) -> None:
        group = f"{self.parent}/{cid}"
        if limits.memory is not None:
            self._need("memory", "memory limit")
            apply_limit(f"{group}/memory.max", str(limits.memory), "memory limit")
            # v2 limits swap alone: memory+swap minus memory; Docker's default is as much as memory.
            if limits.memory_swap is None:
                swap = str(limits.memory)
            elif limits.memory_swap == -1:
                swap = "max"
            else:
                swap = str(limits.memory_swap - limits.memory)
            if limits.memory_swap not in (None, -1) or os.path.exists(f"{group}/memory.swap.max"):
                apply_limit(f"{group}/memory.swap.max", swap, "memory+swap limit")
        if limits.cpu_shares is not None:
            self._need("cpu", "cpu shares")
            apply_limit(
                f"{group}/cpu.weight", str(shares_to_weight(limits.cpu_shares)), "cpu shares"
            )
        if limits.cpu_quota is not None or limits.cpu_period is not None:
            self._need("cpu", "cpu quota")
            quota = "max" if limits.cpu_quota in (None, -1) else str(limits.cpu_quota)
            apply_limit(f"{group}/cpu.max", f"{quota} {limits.cpu_period or 100000}", "cpu quota")
        if limits.cpuset_cpus:
            self._need("cpuset", "cpuset")
            apply_limit(f"{group}/cpuset.cpus", limits.cpuset_cpus, "cpuset")
        if pids_limit != -1 or "pids" in self._enabled:
            self._need("pids", "pids limit")
            value = "max" if pids_limit == -1 else str(pids_limit)
            apply_limit(f"{group}/pids.max", value, "pids limit")
        if limits.blkio_weight is not None:
            self._need("io", "blkio weight")
            weight = blkio_to_io_weight(limits.blkio_weight)
            apply_limit(f"{group}/io.weight", f"default {weight}", "blkio weight")
        per_device: dict[str, list[str]] = {}
        for key, name in (
            ("device_read_bps", "rbps"),
            ("device_write_bps", "wbps"),
            ("device_read_iops", "riops"),
            ("device_write_iops", "wiops"),
        ):
            for dev in getattr(limits, key):
                self._need("io", key.replace("_", " "))
                per_device.setdefault(block_device(dev.path), []).append(f"{name}={dev.rate}")
        for dev, settings in per_device.items():
            apply_limit(f"{group}/io.max", f"{dev} {' '.join(settings)}", "block IO throttle")

    def _write_devices(self, cid: str, rules: list[DeviceRule], privileged: bool) -> None:
        if not privileged:
            self._attach_devices(f"{self.parent}/{cid}", rules)

    # Freezer.
    def _frozen_event(self, cid: str) -> int:
        return read_keyed(f"{self.parent}/{cid}/cgroup.events").get("frozen", 0)

    def freeze(self, cid: str) -> None:
        """Freeze the container and wait until cgroup.events reports frozen 1."""
        with existing_group(cid):
            write(f"{self.parent}/{check_cid(cid)}/cgroup.freeze", "1")
            if not wait_until(lambda: self._frozen_event(cid) == 1, FREEZE_TIMEOUT):
                write(f"{self.parent}/{cid}/cgroup.freeze", "0")
                raise KernelError(f"container {cid} did not freeze within {FREEZE_TIMEOUT:g} s")

    def thaw(self, cid: str) -> None:
        """Let the container's processes run again."""
        with existing_group(cid):
            write(f"{self.parent}/{check_cid(cid)}/cgroup.freeze", "0")
            wait_until(lambda: self._frozen_event(cid) == 0, FREEZE_TIMEOUT)

    def is_frozen(self, cid: str) -> bool:
        """Whether the container was asked to freeze (cgroup.freeze is 1)."""
        with existing_group(cid):
            return read(f"{self.parent}/{check_cid(cid)}/cgroup.freeze") == "1"

    def kill_all(self, cid: str, sig=signal.SIGKILL) -> None:
        """Send `sig` to every process; SIGKILL goes through cgroup.kill when the kernel has it."""
        number = parse_signal(sig)
        kill_file = f"{self.parent}/{check_cid(cid)}/cgroup.kill"
        if number == signal.SIGKILL and os.path.exists(kill_file):
            write(kill_file, "1")
        else:
            signal_pids(self.pids(cid), number)

    def _kill_everything(self, cid: str) -> None:
        if os.path.exists(f"{self.parent}/{cid}/cgroup.kill"):
            write(f"{self.parent}/{cid}/cgroup.kill", "1")
            return
        with contextlib.suppress(BerthError):
            self.freeze(cid)
        signal_pids(self._all_pids(cid), signal.SIGKILL)
        self.thaw(cid)

    # Accounting.
    def stats(self, cid: str) -> CgroupStats:
        """CPU, memory, pids and IO counters of the container."""
        group = f"{self.parent}/{check_cid(cid)}"
        read_bytes = write_bytes = 0
        try:
            text = read(f"{group}/io.stat")
        except FileNotFoundError:
            text = ""
        for line in text.splitlines():
            for field in line.split()[1:]:
                key, _, value = field.partition("=")
                if key == "rbytes":
                    read_bytes += int(value)
                elif key == "wbytes":
                    write_bytes += int(value)
        return CgroupStats(
            cpu_usage_ns=read_keyed(f"{group}/cpu.stat").get("usage_usec", 0) * 1000,
            memory_usage=read_int(f"{group}/memory.current"),
            memory_limit=read_int(f"{group}/memory.max", None),
            memory_max_usage=read_int(f"{group}/memory.peak"),
            pids_current=read_int(f"{group}/pids.current"),
            pids_limit=read_int(f"{group}/pids.max", None),
            blkio_read_bytes=read_bytes,
            blkio_write_bytes=write_bytes,
            oom_kills=read_keyed(f"{group}/memory.events").get("oom_kill", 0),
        )

    def oom_killed(self, cid: str) -> bool:
        """Whether the kernel's OOM killer killed a process of the container."""
        events = read_keyed(f"{self.parent}/{check_cid(cid)}/memory.events")
        return events.get("oom_kill", 0) > 0
