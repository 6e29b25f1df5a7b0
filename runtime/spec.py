"""The typed, validated container spec: the one shape every entry point is parsed into.

The JSON form (`ContainerSpec.to_dict()` / `from_dict()`) is the contract between the
platform (which never imports this module) and the host agent. `from_dict` refuses unknown
fields, so a field the platform forgot to check can never slip through silently.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from runtime.errors import InvalidSpec

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
# A full container id: a reference of this form is an id, never a name (see is_full_id).
FULL_ID_RE = re.compile(r"^[0-9a-f]{64}$")


def is_full_id(ref: Any) -> bool:
    """Whether `ref` is written as a full 64-hex container id (then it is looked up only as one)."""
    return isinstance(ref, str) and bool(FULL_ID_RE.match(ref))


def check_container_name(name: Any) -> None:
    """InvalidSpec unless `name` is a valid container name that cannot pass for an id."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidSpec(
            f"invalid container name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
    if is_full_id(name):
        # A name that reads as an id would let a reference by id land on a look-alike.
        raise InvalidSpec(f"invalid container name {name!r}: a name cannot look like a full id")


HOSTNAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")
MAC_RE = re.compile(r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$")
ENV_KEY_RE = re.compile(r"^[^=\0]+$")

# The kernel refuses memory limits it cannot meet; Docker refuses below 6 MiB.
MIN_MEMORY = 6 * 1024 * 1024
MIN_CPU_PERIOD, MAX_CPU_PERIOD = 1000, 1000000
MIN_CPU_QUOTA = 1000
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")
NAMESPACE_KINDS = ("pid", "ipc", "uts", "user", "cgroup")
MOUNT_TYPES = ("volume", "bind", "tmpfs")

# Docker's default capability set (moby daemon/pkg/oci/defaults.go).
DEFAULT_CAPABILITIES = (
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
)
# In the kernel's numbering order (linux/capability.h): index == capability number.
ALL_CAPABILITIES = (
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
)


def normalize_capability(name: str) -> str:
    """'sys_admin', 'CAP_SYS_ADMIN' and 'SYS_ADMIN' are one capability; 'all' is ALL."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidSpec(f"invalid capability {name!r}")
    cap = name.strip().upper()
    if cap.startswith("CAP_"):
        cap = cap[4:]
    if cap != "ALL" and cap not in ALL_CAPABILITIES:
        raise InvalidSpec(f"unknown capability {name!r}")
    return cap


_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(value: Any, what: str = "size") -> int:
    """Parse Docker's sizes: 64m, 1g, 512k, or a plain number of bytes."""
    if isinstance(value, bool):
        raise InvalidSpec(f"invalid {what}: {value!r}")
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)b?\s*", str(value), re.IGNORECASE)
    if not match:
        raise InvalidSpec(
            f"invalid {what}: {value!r} (use a number with an optional unit b, k, m, g)"
        )
    number, unit = match.groups()
    return int(float(number) * _SIZE_UNITS[unit.lower()])


def _check_keys(cls, data: Any, where: str) -> dict:
    if not isinstance(data, dict):
        raise InvalidSpec(f"{where} must be an object, not {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidSpec(f"unknown field(s) in {where}: {', '.join(unknown)}")
    return data


def _str_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise InvalidSpec(f"{where} must be a list of strings")
    for item in value:
        if not isinstance(item, str):
            raise InvalidSpec(f"{where} must be a list of strings")
    return list(value)


def _opt_int(value: Any, where: str, minimum: int | None = None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSpec(f"{where} must be an integer")
    if minimum is not None and value < minimum:
        raise InvalidSpec(f"{where} must be at least {minimum}")
    return value


def _check_container_path(path: Any, where: str) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidSpec(f"{where} must be an absolute path, got {path!r}")
    if "\0" in path or any(part == ".." for part in path.split("/")):
        raise InvalidSpec(f"{where} must not contain '..' or NUL: {path!r}")
    return path


@dataclass
class Mount:
    """A named volume, a tmpfs or a bind of a host path, at `target` inside the container."""

    type: str
    target: str
    source: str = ""
    read_only: bool = False
    options: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Any) -> Mount:
        data = _check_keys(cls, data, "mount")
        mount = cls(
            type=data.get("type", ""),
            target=data.get("target", ""),
            source=data.get("source", "") or "",
            read_only=bool(data.get("read_only", False)),
            options=_str_list(data.get("options"), "mount options"),
        )
        mount.validate()
        return mount

    def validate(self) -> None:
        if self.type not in MOUNT_TYPES:
            raise InvalidSpec(
                f"mount type must be one of {', '.join(MOUNT_TYPES)}, got {self.type!r}"
            )
        _check_container_path(self.target, "mount target")
        if self.target == "/":
            raise InvalidSpec("a mount cannot replace the container's root")
        if self.type == "bind":
            _check_container_path(self.source, "bind source")
        elif self.type == "volume":
            if not NAME_RE.match(self.source or ""):
                raise InvalidSpec(f"invalid volume name {self.source!r}")
        elif self.source:
            raise InvalidSpec("a tmpfs mount takes no source")
        for opt in self.options:
            if self.type != "tmpfs" or not re.fullmatch(
                r"(size=\d+[kmg]?|mode=[0-7]{3,4}|noexec|nosuid|nodev)", opt
            ):
                raise InvalidSpec(f"unsupported {self.type} mount option {opt!r}")


@dataclass
class PortMapping:
    """Publish `container_port/protocol` on `host_ip:host_port` (0 means: pick a free port).

    With `host_port_end`, the first free port of `host_port..host_port_end` is used.
    """

    container_port: int
    host_port: int = 0
    host_ip: str = ""
    protocol: str = "tcp"
    host_port_end: int = 0  # 0: a single host port, not a range

    @classmethod
    def from_dict(cls, data: Any) -> PortMapping:
        data = _check_keys(cls, data, "port mapping")
        port = cls(
            container_port=data.get("container_port"),
            host_port=data.get("host_port", 0),
            host_ip=data.get("host_ip", "") or "",
            protocol=data.get("protocol", "tcp"),
            host_port_end=data.get("host_port_end", 0),
        )
        port.validate()
        return port

    def validate(self) -> None:
        for name, value, low in (
            ("container port", self.container_port, 1),
            ("host port", self.host_port, 0),
            ("host port range end", self.host_port_end, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 65535:
                raise InvalidSpec(f"{name} must be a number from {low} to 65535, got {value!r}")
        if self.host_port_end and not 0 < self.host_port <= self.host_port_end:
            raise InvalidSpec(
                f"invalid host port range {self.host_port}-{self.host_port_end}: "
                "it needs a first port no greater than its last"
            )
        if self.protocol not in ("tcp", "udp"):
            raise InvalidSpec(f"protocol must be tcp or udp, got {self.protocol!r}")
        if self.host_ip:
            try:
                ipaddress.ip_address(self.host_ip)
            except ValueError:
                raise InvalidSpec(f"invalid host IP {self.host_ip!r}") from None


@dataclass
class ThrottleDevice:
    """A per-device block IO limit: `path` is a host block device, `rate` bytes or IOs per second."""

    path: str
    rate: int

    @classmethod
    def from_dict(cls, data: Any) -> ThrottleDevice:
        data = _check_keys(cls, data, "throttle device")
        dev = cls(path=data.get("path", ""), rate=data.get("rate"))
        _check_container_path(dev.path, "throttle device path")
        _opt_int(dev.rate, "throttle rate", 1)
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
        data = _check_keys(cls, data or {}, "limits")
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
            cpu_shares=_opt_int(data.get("cpu_shares"), "cpu_shares"),
            cpu_quota=_opt_int(data.get("cpu_quota"), "cpu_quota"),
            cpu_period=_opt_int(data.get("cpu_period"), "cpu_period"),
            cpuset_cpus=data.get("cpuset_cpus"),
            pids=_opt_int(data.get("pids"), "pids limit"),
            blkio_weight=_opt_int(data.get("blkio_weight"), "blkio_weight"),
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
        data = _check_keys(cls, data or {}, "restart policy")
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


@dataclass
class NetworkSpec:
    """How the container is wired: mode, networks to join, published ports, names and DNS."""

    mode: str = "bridge"  # bridge | none | host | container:<id or name>
    networks: list[str] = field(default_factory=list)  # empty with bridge mode: the default network
    aliases: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)  # "name:alias" or "name"
    ports: list[PortMapping] = field(default_factory=list)
    publish_all: bool = False
    mac_address: str | None = None
    ip_address: str | None = None
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    extra_hosts: list[str] = field(default_factory=list)  # "host:ip"

    @classmethod
    def from_dict(cls, data: Any) -> NetworkSpec:
        data = _check_keys(cls, data or {}, "network")
        net = cls(
            mode=data.get("mode", "bridge"),
            networks=_str_list(data.get("networks"), "networks"),
            aliases=_str_list(data.get("aliases"), "aliases"),
            links=_str_list(data.get("links"), "links"),
            ports=[PortMapping.from_dict(p) for p in (data.get("ports") or [])],
            publish_all=bool(data.get("publish_all", False)),
            mac_address=data.get("mac_address"),
            ip_address=data.get("ip_address"),
            dns=_str_list(data.get("dns"), "dns"),
            dns_search=_str_list(data.get("dns_search"), "dns_search"),
            extra_hosts=_str_list(data.get("extra_hosts"), "extra_hosts"),
        )
        net.validate()
        return net

    def validate(self) -> None:
        if not (self.mode in ("bridge", "none", "host") or self.mode.startswith("container:")):
            raise InvalidSpec(
                f"network mode must be bridge, none, host or container:<name>, got {self.mode!r}"
            )
        if self.mode != "bridge" and (
            self.networks or self.ports or self.publish_all or self.links
        ):
            raise InvalidSpec(
                f"networks, published ports and links need bridge mode, not {self.mode!r}"
            )
        if self.mac_address is not None and not MAC_RE.match(self.mac_address):
            raise InvalidSpec(f"invalid MAC address {self.mac_address!r}")
        if self.mac_address is not None and int(self.mac_address[:2], 16) & 1:
            raise InvalidSpec(f"MAC address {self.mac_address!r} is a multicast address")
        for server in self.dns:
            try:
                ipaddress.ip_address(server)
            except ValueError:
                raise InvalidSpec(f"invalid DNS server {server!r}") from None
        if self.ip_address is not None:
            try:
                ipaddress.IPv4Address(self.ip_address)
            except ValueError:
                raise InvalidSpec(f"invalid IP address {self.ip_address!r}") from None
        for name in self.networks + self.aliases:
            if not NAME_RE.match(name):
                raise InvalidSpec(f"invalid network or alias name {name!r}")
        for link in self.links:
            target, _, alias = link.partition(":")
            if not NAME_RE.match(target) or (alias and not NAME_RE.match(alias)):
                raise InvalidSpec(f"invalid link {link!r} (use name or name:alias)")
        for entry in self.extra_hosts:
            host, _, addr = entry.partition(":")
            try:
                ipaddress.ip_address(addr)
            except ValueError:
                raise InvalidSpec(f"invalid extra host {entry!r} (use host:ip)") from None
            if not host:
                raise InvalidSpec(f"invalid extra host {entry!r} (use host:ip)")


@dataclass
class ContainerSpec:
    """Everything the runtime needs to create one container."""

    image: str
    name: str | None = None
    command: list[str] | None = None  # None: the image's Cmd
    entrypoint: list[str] | None = None  # None: the image's Entrypoint
    env: list[str] = field(default_factory=list)  # "KEY=value"
    working_dir: str | None = None
    user: str | None = None  # "uid[:gid]" or a name from the image's /etc/passwd
    hostname: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    mounts: list[Mount] = field(default_factory=list)
    read_only_rootfs: bool = False
    limits: Limits = field(default_factory=Limits)
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    no_new_privileges: bool = True
    seccomp: bool = True  # False: unconfined
    namespaces: dict[str, str] = field(default_factory=dict)  # kind -> "host" | "container:<id>"
    devices: list[str] = field(default_factory=list)  # "/dev/host[:/dev/inside[:rwm]]"
    network: NetworkSpec = field(default_factory=NetworkSpec)
    tty: bool = False
    stdin_open: bool = False
    init: bool = False
    stop_signal: str = "SIGTERM"
    stop_timeout: int = 10
    # Removed by the host when it exits (docker run --rm); never with a restart policy.
    auto_remove: bool = False

    @classmethod
    def from_dict(cls, data: Any) -> ContainerSpec:
        """Parse and validate; unknown fields anywhere are refused."""
        data = _check_keys(cls, data, "container spec")
        if not isinstance(data.get("image"), str) or not data.get("image"):
            raise InvalidSpec("image is required")
        labels = data.get("labels") or {}
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise InvalidSpec("labels must be an object of strings")
        namespaces = data.get("namespaces") or {}
        if not isinstance(namespaces, dict):
            raise InvalidSpec("namespaces must be an object")
        spec = cls(
            image=data["image"],
            name=data.get("name"),
            command=None if data.get("command") is None else _str_list(data["command"], "command"),
            entrypoint=None
            if data.get("entrypoint") is None
            else _str_list(data["entrypoint"], "entrypoint"),
            env=_str_list(data.get("env"), "env"),
            working_dir=data.get("working_dir"),
            user=data.get("user"),
            hostname=data.get("hostname"),
            labels=dict(labels),
            mounts=[Mount.from_dict(m) for m in (data.get("mounts") or [])],
            read_only_rootfs=bool(data.get("read_only_rootfs", False)),
            limits=Limits.from_dict(data.get("limits")),
            restart=RestartPolicy.from_dict(data.get("restart")),
            cap_add=[normalize_capability(c) for c in _str_list(data.get("cap_add"), "cap_add")],
            cap_drop=[normalize_capability(c) for c in _str_list(data.get("cap_drop"), "cap_drop")],
            privileged=_bool(data, "privileged", False),
            no_new_privileges=_bool(data, "no_new_privileges", True),
            seccomp=_bool(data, "seccomp", True),
            namespaces=dict(namespaces),
            devices=_str_list(data.get("devices"), "devices"),
            network=NetworkSpec.from_dict(data.get("network")),
            tty=_bool(data, "tty", False),
            stdin_open=_bool(data, "stdin_open", False),
            init=_bool(data, "init", False),
            stop_signal=data.get("stop_signal", "SIGTERM"),
            stop_timeout=_opt_int(data.get("stop_timeout", 10), "stop_timeout", 0),
            auto_remove=_bool(data, "auto_remove", False),
        )
        spec.validate()
        return spec

    def validate(self) -> None:
        if self.name is not None:
            check_container_name(self.name)
        if self.hostname is not None and not HOSTNAME_RE.match(self.hostname):
            raise InvalidSpec(f"invalid hostname {self.hostname!r}")
        if self.working_dir is not None:
            _check_container_path(self.working_dir, "working directory")
        for item in self.env:
            key, sep, _ = item.partition("=")
            if not sep or not ENV_KEY_RE.match(key) or "\0" in item:
                raise InvalidSpec(f"invalid environment entry {item!r} (use KEY=value)")
        if self.user is not None and not re.fullmatch(
            r"[a-zA-Z0-9_.-]+(:[a-zA-Z0-9_.-]+)?", self.user
        ):
            raise InvalidSpec(f"invalid user {self.user!r} (use uid[:gid] or a name)")
        for kind, value in self.namespaces.items():
            if kind not in NAMESPACE_KINDS:
                raise InvalidSpec(
                    f"unknown namespace {kind!r}; one of {', '.join(NAMESPACE_KINDS)} (network goes in network.mode)"
                )
            if not isinstance(value, str) or not (
                value in ("host", "private") or value.startswith("container:")
            ):
                raise InvalidSpec(
                    f"namespace {kind} must be 'private', 'host' or 'container:<name>', got {value!r}"
                )
        for dev in self.devices:
            parts = dev.split(":")
            if len(parts) > 3 or not parts[0].startswith("/dev/"):
                raise InvalidSpec(f"invalid device {dev!r} (use /dev/host[:/dev/inside[:rwm]])")
            if len(parts) == 3 and not re.fullmatch(r"[rwm]{1,3}", parts[2]):
                raise InvalidSpec(f"invalid device permissions in {dev!r}")
        seen = set()
        for mount in self.mounts:
            if mount.target in seen:
                raise InvalidSpec(f"duplicate mount point {mount.target}")
            seen.add(mount.target)
        if self.stdin_open and not isinstance(self.stdin_open, bool):
            raise InvalidSpec("stdin_open must be true or false")
        from runtime.signals import parse_signal  # local: keeps this module import-light

        parse_signal(self.stop_signal)
        self.limits.validate()
        self.restart.validate()
        self.network.validate()
        if self.restart.name != "no" and self.network.mode.startswith("container:"):
            pass  # allowed, as in Docker
        if self.auto_remove and self.restart.name != "no":
            raise InvalidSpec("conflicting options: a restart policy and auto-remove (--rm)")

    @property
    def effective_capabilities(self) -> list[str]:
        """The capability set after privileged, --cap-add and --cap-drop (ALL honoured)."""
        if self.privileged:
            return list(ALL_CAPABILITIES)
        caps = list(DEFAULT_CAPABILITIES)
        caps = [] if "ALL" in self.cap_drop else [c for c in caps if c not in self.cap_drop]
        if "ALL" in self.cap_add:
            return [c for c in ALL_CAPABILITIES if c not in self.cap_drop]
        caps += [c for c in self.cap_add if c not in caps]
        return caps

    def to_dict(self) -> dict:
        """The JSON form: what the platform stores and the host agent parses back."""
        return asdict(self)


def _bool(data: dict, key: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise InvalidSpec(f"{key} must be true or false, got {value!r}")
    return value
