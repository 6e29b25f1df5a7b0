"""The container spec's resource limits and restart policy."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from runtime.errors import InvalidSpec
from runtime.spec_fields import check_container_path, check_keys, opt_int, parse_size

# The kernel refuses memory limits it cannot meet; Docker refuses below 6 MiB.
MIN_MEMORY = 6 * 1024 * 1024
MIN_CPU_PERIOD, MAX_CPU_PERIOD = 1000, 1000000
MIN_CPU_QUOTA = 1000
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")


@dataclass
class ThrottleDevice:
    """A per-device block IO limit: `path` is a host block device, `rate` bytes or IOs per second."""

    path: str
    rate: int

    @classmethod
    def from_dict(cls, data: Any) -> ThrottleDevice:
        data = check_keys(cls, data, "throttle device")
        dev = cls(path=data.get("path", ""), rate=data.get("rate"))
        check_container_path(dev.path, "throttle device path")
        opt_int(dev.rate, "throttle rate", 1)
        return dev


@dataclass
class Limits:
    """Resource limits, all written into the cgroup before the container's first instruction."""

    memory: int | None = None  # bytes
    memory_swap: int | None = None  # bytes of memory+swap; -1 unlimited
    cpu_shares: int | None = None
    cpu_quota: int | None = None  # microseconds per period
    cpu_period: int | None = None  # microseconds
    cpuset_cpus: str | None = None
    pids: int | None = None  # None: the runtime's default; -1: unlimited
    blkio_weight: int | None = None
    device_read_bps: list[ThrottleDevice] = field(default_factory=list)
    device_write_bps: list[ThrottleDevice] = field(default_factory=list)
    device_read_iops: list[ThrottleDevice] = field(default_factory=list)
    device_write_iops: list[ThrottleDevice] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Any) -> Limits:
        data = check_keys(cls, data or {}, "limits")
        limits = cls(
            memory=None
            if data.get("memory") is None
            else parse_size(data["memory"], "memory limit"),
            memory_swap=None
            if data.get("memory_swap") is None
            else (
                -1
                if data["memory_swap"] in (-1, "-1")
                else parse_size(data["memory_swap"], "memory+swap limit")
            ),
            cpu_shares=opt_int(data.get("cpu_shares"), "cpu_shares"),
            cpu_quota=opt_int(data.get("cpu_quota"), "cpu_quota"),
            cpu_period=opt_int(data.get("cpu_period"), "cpu_period"),
            cpuset_cpus=data.get("cpuset_cpus"),
            pids=opt_int(data.get("pids"), "pids limit"),
            blkio_weight=opt_int(data.get("blkio_weight"), "blkio_weight"),
            **{
                key: [ThrottleDevice.from_dict(d) for d in (data.get(key) or [])]
                for key in (
                    "device_read_bps",
                    "device_write_bps",
                    "device_read_iops",
                    "device_write_iops",
                )
            },
        )
        limits.validate()
        return limits

    def validate(self) -> None:
        if self.memory is not None and self.memory < MIN_MEMORY:
            raise InvalidSpec(f"minimum memory limit allowed is 6MB, got {self.memory} bytes")
        if self.memory_swap is not None and self.memory_swap != -1:
            if self.memory is None:
                raise InvalidSpec("you must set a memory limit to set a memory+swap limit")
            if self.memory_swap < self.memory:
                raise InvalidSpec("memory+swap limit must be at least the memory limit")
        if self.cpu_shares is not None and not 2 <= self.cpu_shares <= 262144:
            raise InvalidSpec("cpu_shares must be from 2 to 262144")
        if self.cpu_period is not None and not MIN_CPU_PERIOD <= self.cpu_period <= MAX_CPU_PERIOD:
            raise InvalidSpec("cpu_period must be from 1000 to 1000000 microseconds")
        if self.cpu_quota is not None and self.cpu_quota != -1 and self.cpu_quota < MIN_CPU_QUOTA:
            raise InvalidSpec("cpu_quota must be at least 1000 microseconds")
        if self.cpuset_cpus is not None and not re.fullmatch(
            r"\d+(-\d+)?(,\d+(-\d+)?)*", str(self.cpuset_cpus)
        ):
            raise InvalidSpec(f"invalid cpuset {self.cpuset_cpus!r} (use e.g. 0-1 or 0,2)")
        if self.pids is not None and self.pids != -1 and self.pids < 1:
            raise InvalidSpec("pids limit must be at least 1, or -1 for unlimited")
        if self.blkio_weight is not None and not 10 <= self.blkio_weight <= 1000:
            raise InvalidSpec("blkio_weight must be from 10 to 1000")


@dataclass
class RestartPolicy:
    """What the monitor does when the container's program exits."""

    name: str = "no"
    max_retries: int = 0

    @classmethod
    def from_dict(cls, data: Any) -> RestartPolicy:
        data = check_keys(cls, data or {}, "restart policy")
        policy = cls(name=data.get("name", "no"), max_retries=data.get("max_retries", 0))
        policy.validate()
        return policy

    @classmethod
    def parse(cls, text: str) -> RestartPolicy:
        """Parse Docker's `--restart` value: no, always, unless-stopped, on-failure[:N]."""
        name, _, count = text.partition(":")
        if count and not count.isdigit():
            raise InvalidSpec(f"invalid restart policy {text!r}")
        policy = cls(name=name, max_retries=int(count or 0))
        policy.validate()
        if count and name != "on-failure":
            raise InvalidSpec(f"maximum retry count cannot be used with restart policy {name!r}")
        return policy

    def validate(self) -> None:
        if self.name not in RESTART_POLICIES:
            raise InvalidSpec(
                f"restart policy must be one of {', '.join(RESTART_POLICIES)}, got {self.name!r}"
            )
        if (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or self.max_retries < 0
        ):
            raise InvalidSpec("max_retries must be a non-negative integer")
