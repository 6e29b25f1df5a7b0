"""The typed, validated container spec: the one shape every entry point is parsed into.

The JSON form (`ContainerSpec.to_dict()` / `from_dict()`) is the contract between the
platform (which never imports this module) and the host agent. `from_dict` refuses unknown
fields, so a field the platform forgot to check can never slip through silently. The parts
live in their own modules (spec_fields, spec_caps, spec_mounts, spec_limits, spec_network);
their public names are importable from here too, as callers always have.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from runtime.errors import InvalidSpec
from runtime.spec_caps import ALL_CAPABILITIES, DEFAULT_CAPABILITIES, normalize_capability
from runtime.spec_fields import (
    ENV_KEY_RE,
    FULL_ID_RE,
    HOSTNAME_RE,
    MAC_RE,
    NAME_RE,
    bool_field,
    check_container_name,
    check_container_path,
    check_keys,
    is_full_id,
    opt_int,
    parse_size,
    str_list,
)
from runtime.spec_health import HealthCheck
from runtime.spec_limits import (
    MAX_CPU_PERIOD,
    MIN_CPU_PERIOD,
    MIN_CPU_QUOTA,
    MIN_MEMORY,
    RESTART_POLICIES,
    Limits,
    RestartPolicy,
    ThrottleDevice,
)
from runtime.spec_mounts import MOUNT_TYPES, Mount
from runtime.spec_network import NetworkSpec, PortMapping

__all__ = [
    "ALL_CAPABILITIES",
    "DEFAULT_CAPABILITIES",
    "ENV_KEY_RE",
    "FULL_ID_RE",
    "HOSTNAME_RE",
    "MAC_RE",
    "MAX_CPU_PERIOD",
    "MIN_CPU_PERIOD",
    "MIN_CPU_QUOTA",
    "MIN_MEMORY",
    "MOUNT_TYPES",
    "NAMESPACE_KINDS",
    "NAME_RE",
    "RESTART_POLICIES",
    "ContainerSpec",
    "HealthCheck",
    "Limits",
    "Mount",
    "NetworkSpec",
    "PortMapping",
    "RestartPolicy",
    "ThrottleDevice",
    "check_container_name",
    "is_full_id",
    "normalize_capability",
    "parse_size",
]

NAMESPACE_KINDS = ("pid", "ipc", "uts", "user", "cgroup")


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
    # Run by the host agent while the container runs (spec_health.py); None: the image's.
    healthcheck: HealthCheck | None = None

    @classmethod
    def from_dict(cls, data: Any) -> ContainerSpec:
        """Parse and validate; unknown fields anywhere are refused."""
        data = check_keys(cls, data, "container spec")
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
            command=None if data.get("command") is None else str_list(data["command"], "command"),
            entrypoint=None
            if data.get("entrypoint") is None
            else str_list(data["entrypoint"], "entrypoint"),
            env=str_list(data.get("env"), "env"),
            working_dir=data.get("working_dir"),
            user=data.get("user"),
            hostname=data.get("hostname"),
            labels=dict(labels),
            mounts=[Mount.from_dict(m) for m in (data.get("mounts") or [])],
            read_only_rootfs=bool(data.get("read_only_rootfs", False)),
            limits=Limits.from_dict(data.get("limits")),
            restart=RestartPolicy.from_dict(data.get("restart")),
            cap_add=[normalize_capability(c) for c in str_list(data.get("cap_add"), "cap_add")],
            cap_drop=[normalize_capability(c) for c in str_list(data.get("cap_drop"), "cap_drop")],
            privileged=bool_field(data, "privileged", False),
            no_new_privileges=bool_field(data, "no_new_privileges", True),
            seccomp=bool_field(data, "seccomp", True),
            namespaces=dict(namespaces),
            devices=str_list(data.get("devices"), "devices"),
            network=NetworkSpec.from_dict(data.get("network")),
            tty=bool_field(data, "tty", False),
            stdin_open=bool_field(data, "stdin_open", False),
            init=bool_field(data, "init", False),
            stop_signal=data.get("stop_signal", "SIGTERM"),
            stop_timeout=opt_int(data.get("stop_timeout", 10), "stop_timeout", 0),
            auto_remove=bool_field(data, "auto_remove", False),
            healthcheck=HealthCheck.from_dict(data.get("healthcheck")),
        )
        spec.validate()
        return spec

    def validate(self) -> None:
        if self.name is not None:
            check_container_name(self.name)
        if self.hostname is not None and not HOSTNAME_RE.match(self.hostname):
            raise InvalidSpec(f"invalid hostname {self.hostname!r}")
        if self.working_dir is not None:
            check_container_path(self.working_dir, "working directory")
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
