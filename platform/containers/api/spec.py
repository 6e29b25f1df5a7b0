"""DRF serializers mirroring runtime/spec.py: a request becomes ContainerSpec.to_dict() or a 400.

The web never imports `runtime`; these mirror its fields and main checks, and the host agent
parses the stored dict again with `ContainerSpec.from_dict`, which refuses anything unknown.
"""

import re
import threading

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.utils.serializer_helpers import BindingDict

from api.fields import (
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    string_list,
)
from containers.api.spec_health import HealthCheckSerializer
from containers.policy import normalize_capability
from containers.references import FULL_ID_RE

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
HOSTNAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")
MIN_MEMORY = 6 * 1024 * 1024
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
# Mirrors runtime.spec.ALL_CAPABILITIES (the web never imports the runtime); a test keeps them equal.
ALL_CAPS = set(
    [
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
        "ALL",
    ]
)


def _abs_path(value: str, what: str) -> str:
    if not value.startswith("/") or "\0" in value or ".." in value.split("/"):
        raise serializers.ValidationError(f"{what} must be an absolute path without '..'")
    return value


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string", "example": "256m"}]})
class SizeField(serializers.Field):
    """Bytes as an integer, or Docker's sizes: 64m, 1g, 512k."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            raise serializers.ValidationError("invalid size")
        if isinstance(data, int):
            return data
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)b?\s*", str(data), re.IGNORECASE)
        if not match:
            raise serializers.ValidationError(
                f"invalid size {data!r} (use a number with an optional unit b, k, m, g)"
            )
        return int(float(match.group(1)) * _UNITS[match.group(2).lower()])

    def to_representation(self, value):
        return value


class MountSerializer(StrictSerializer):
    """A named volume, a tmpfs, or a bind of a host path."""

    type = serializers.ChoiceField(choices=["volume", "bind", "tmpfs"])
    target = StrictCharField()
    source = StrictCharField(required=False, default="", allow_blank=True)
    read_only = StrictBooleanField(required=False, default=False)
    options = string_list(required=False, default=list)

    def validate_target(self, value):
        _abs_path(value, "mount target")
        if value == "/":
            raise serializers.ValidationError("a mount cannot replace the container's root")
        return value

    def validate(self, attrs):
        if attrs["type"] == "bind":
            _abs_path(attrs["source"], "bind source")
        elif attrs["type"] == "tmpfs" and attrs["source"]:
            raise serializers.ValidationError("a tmpfs mount takes no source")
        return attrs


class PortMappingSerializer(StrictSerializer):
    """container_port/protocol on host_ip:host_port, or the first free port up to host_port_end."""

    container_port = StrictIntegerField(min_value=1, max_value=65535)
    host_port = StrictIntegerField(required=False, default=0, min_value=0, max_value=65535)
    host_ip = serializers.IPAddressField(required=False, default="", allow_blank=True)
    protocol = serializers.ChoiceField(choices=["tcp", "udp"], required=False, default="tcp")
    host_port_end = StrictIntegerField(required=False, default=0, min_value=0, max_value=65535)

    def validate(self, attrs):
        end = attrs["host_port_end"]
        if end and not 0 < attrs["host_port"] <= end:
            raise serializers.ValidationError(
                f"invalid host port range {attrs['host_port']}-{end}: "
                "it needs a first port no greater than its last"
            )
        return attrs


class ThrottleDeviceSerializer(StrictSerializer):
    """A per-device block IO limit."""

    path = StrictCharField()
    rate = StrictIntegerField(min_value=1)


class LimitsSerializer(StrictSerializer):
    """Resource limits."""

    memory = SizeField(required=False, default=None, allow_null=True)
    memory_swap = SizeField(required=False, default=None, allow_null=True)
    cpu_shares = StrictIntegerField(
        required=False, default=None, allow_null=True, min_value=2, max_value=262144
    )
    cpu_quota = StrictIntegerField(required=False, default=None, allow_null=True, min_value=-1)
    cpu_period = StrictIntegerField(
        required=False, default=None, allow_null=True, min_value=1000, max_value=1000000
    )
    cpuset_cpus = serializers.RegexField(
        r"^\d+(-\d+)?(,\d+(-\d+)?)*$", required=False, default=None, allow_null=True
    )
    pids = StrictIntegerField(required=False, default=None, allow_null=True, min_value=-1)
    blkio_weight = StrictIntegerField(
        required=False, default=None, allow_null=True, min_value=10, max_value=1000
    )
    device_read_bps = ThrottleDeviceSerializer(many=True, required=False)
    device_write_bps = ThrottleDeviceSerializer(many=True, required=False)
    device_read_iops = ThrottleDeviceSerializer(many=True, required=False)
    device_write_iops = ThrottleDeviceSerializer(many=True, required=False)

    def validate(self, attrs):
        if attrs["memory"] is not None and attrs["memory"] < MIN_MEMORY:
            raise serializers.ValidationError({"memory": ["minimum memory limit is 6MB"]})
        if attrs["pids"] == 0:
            raise serializers.ValidationError(
                {"pids": ["pids limit must be at least 1, or -1 for unlimited"]}
            )
        return attrs


class RestartPolicySerializer(StrictSerializer):
    """What happens when the program exits."""

    name = serializers.ChoiceField(
        choices=["no", "on-failure", "always", "unless-stopped"], required=False, default="no"
    )
    max_retries = StrictIntegerField(required=False, default=0, min_value=0)


class NetworkSpecSerializer(StrictSerializer):
    """Network mode, networks, published ports, names and DNS."""

    mode = StrictCharField(required=False, default="bridge")
    networks = string_list(required=False, default=list)
    aliases = string_list(required=False, default=list)
    links = string_list(required=False, default=list)
    ports = PortMappingSerializer(many=True, required=False)
    publish_all = StrictBooleanField(required=False, default=False)
    mac_address = serializers.RegexField(
        r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$", required=False, default=None, allow_null=True
    )
    ip_address = serializers.IPAddressField(
        protocol="IPv4", required=False, default=None, allow_null=True
    )
    dns = serializers.ListField(child=serializers.IPAddressField(), required=False, default=list)
    dns_search = string_list(required=False, default=list)
    extra_hosts = string_list(required=False, default=list)

    def validate_mode(self, value):
        if value not in ("bridge", "none", "host") and not value.startswith("container:"):
            raise serializers.ValidationError(
                "network mode must be bridge, none, host or container:<name>"
            )
        return value

    def validate(self, attrs):
        if attrs["mode"] != "bridge" and (
            attrs["networks"] or attrs["ports"] or attrs["publish_all"] or attrs["links"]
        ):
            raise serializers.ValidationError(
                "networks, published ports and links need bridge mode"
            )
        return attrs


class KeptFields:
    """A serializer whose fields (nested serializers and all) are built once per thread.

    DRF deep-copies every declared field for each new serializer instance: for the spec,
    about 90 fields and nested fields, three quarters of a create's body validation. These
    fields keep no state between validations (no context, no instance, no partial updates;
    the `validate_*` methods are looked up on the serializer being validated), so one thread
    can use the same set for every request; each thread builds its own, so none is shared
    between two validations at the same time."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._kept = threading.local()

    @property
    def fields(self):
        fields = getattr(self._kept, "fields", None)
        if fields is None:
            # Bound to an instance of their own, not to this one (which holds a request's
            # body, kept alive as long as the thread otherwise).
            fields = BindingDict(type(self)())
            for key, value in self.get_fields().items():
                fields[key] = value
            self._kept.fields = fields
        return fields


class ContainerSpecSerializer(KeptFields, StrictSerializer):
    """The whole container spec, field for field as runtime.spec.ContainerSpec."""

    image = StrictCharField()
    name = serializers.RegexField(NAME_RE, required=False, default=None, allow_null=True)
    command = string_list(required=False, default=None, allow_null=True)
    entrypoint = string_list(required=False, default=None, allow_null=True)
    env = string_list(required=False, default=list)
    working_dir = StrictCharField(required=False, default=None, allow_null=True)
    user = serializers.RegexField(
        r"^[a-zA-Z0-9_.-]+(:[a-zA-Z0-9_.-]+)?$", required=False, default=None, allow_null=True
    )
    hostname = serializers.RegexField(HOSTNAME_RE, required=False, default=None, allow_null=True)
    labels = serializers.DictField(
        child=StrictCharField(allow_blank=True), required=False, default=dict
    )
    mounts = MountSerializer(many=True, required=False)
    read_only_rootfs = StrictBooleanField(required=False, default=False)
    limits = LimitsSerializer(required=False)
    restart = RestartPolicySerializer(required=False)
    cap_add = string_list(required=False, default=list)
    cap_drop = string_list(required=False, default=list)
    privileged = StrictBooleanField(required=False, default=False)
    no_new_privileges = StrictBooleanField(required=False, default=True)
    seccomp = StrictBooleanField(required=False, default=True)
    namespaces = serializers.DictField(child=StrictCharField(), required=False, default=dict)
    devices = string_list(required=False, default=list)
    network = NetworkSpecSerializer(required=False)
    tty = StrictBooleanField(required=False, default=False)
    stdin_open = StrictBooleanField(required=False, default=False)
    init = StrictBooleanField(required=False, default=False)
    stop_signal = StrictCharField(required=False, default="SIGTERM")
    stop_timeout = StrictIntegerField(required=False, default=10, min_value=0)
    # Removed by the host when it exits (docker run --rm).
    auto_remove = StrictBooleanField(required=False, default=False)
    # Run by the host while the container runs; null: the image's HEALTHCHECK, if any.
    healthcheck = HealthCheckSerializer(required=False, default=None, allow_null=True)

    def validate_name(self, value):
        if value is not None and FULL_ID_RE.match(value):
            raise serializers.ValidationError("a container name cannot look like a full id")
        return value

    def validate_image(self, value):
        if not value.strip():
            raise serializers.ValidationError("image is required")
        return value

    def validate_working_dir(self, value):
        return None if value is None else _abs_path(value, "working directory")

    def validate_env(self, value):
        for item in value:
            key, sep, _ = item.partition("=")
            if not sep or not key or "\0" in item:
                raise serializers.ValidationError(
                    f"invalid environment entry {item!r} (use KEY=value)"
                )
        return value

    def _caps(self, value):
        caps = [normalize_capability(c) for c in value]
        unknown = [c for c in caps if c not in ALL_CAPS]
        if unknown:
            raise serializers.ValidationError(f"unknown capability {unknown[0]!r}")
        return caps

    def validate_cap_add(self, value):
        return self._caps(value)

    def validate_cap_drop(self, value):
        return self._caps(value)

    def validate_namespaces(self, value):
        for kind, mode in value.items():
            if kind not in ("pid", "ipc", "uts", "user", "cgroup"):
                raise serializers.ValidationError(
                    f"unknown namespace {kind!r} (network goes in network.mode)"
                )
            if mode not in ("host", "private") and not mode.startswith("container:"):
                raise serializers.ValidationError(
                    f"namespace {kind} must be 'private', 'host' or 'container:<name>'"
                )
            if kind == "user" and mode not in ("host", "private"):
                # Left out, it is private (the default); a container joined through the
                # network or pid namespace lends its user namespace as well.
                raise serializers.ValidationError(
                    "namespace user must be 'private' (the default) or 'host'"
                )
        return value

    def validate_devices(self, value):
        for dev in value:
            parts = dev.split(":")
            if len(parts) > 3 or not parts[0].startswith("/dev/"):
                raise serializers.ValidationError(
                    f"invalid device {dev!r} (use /dev/host[:/dev/inside[:rwm]])"
                )
        return value

    def validate_mounts(self, value):
        targets = [m["target"] for m in value]
        if len(targets) != len(set(targets)):
            raise serializers.ValidationError("duplicate mount point")
        return value

    def validate(self, attrs):
        limits = attrs["limits"]
        swap = limits["memory_swap"]
        if swap is not None and swap != -1:
            if limits["memory"] is None:
                raise serializers.ValidationError(
                    {"limits": ["set a memory limit to set a memory+swap limit"]}
                )
            if swap < limits["memory"]:
                raise serializers.ValidationError(
                    {"limits": ["memory+swap limit must be at least the memory limit"]}
                )
        if attrs.get("auto_remove") and (attrs.get("restart") or {}).get("name", "no") != "no":
            raise serializers.ValidationError(
                {"auto_remove": ["conflicting options: a restart policy and auto-remove (--rm)"]}
            )
        return attrs


FIELD_ORDER = tuple(ContainerSpecSerializer().fields)


def parse_spec(data) -> dict:
    """Validate a request body into the JSON form of ContainerSpec (raises ValidationError)."""
    serializer = ContainerSpecSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    return _plain(serializer.validated_data)


def _plain(value):
    # OrderedDicts and ReturnDicts become plain JSON-able dicts and lists.
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
