"""Checks of a container spec against what its host last reported, before anything is written.

The spec serializer (containers/api/spec.py) checks the spelling of each field; the runtime
checks everything again on the host. In between, a request that cannot work on its host (an
image the host does not have, a network it does not know, CPUs or memory it does not have)
must be refused at once with the field it is about, not accepted and left `pending` when the
agent fails. What the host reports lives in its rows: Image and Network rows of the host, and
`Host.info` from its heartbeat (agent/heartbeat.py: mem_total, cpus, block_devices). A fact the
host has not reported is not checked here; the agent's own checks stay the last word.
"""

import ipaddress
import signal

from config.errors import InvalidRequest

# Linux refuses one environment string longer than MAX_ARG_STRLEN (32 pages) with E2BIG, and
# all of argv and the environment together beyond ARG_MAX (a quarter of the stack limit, 2 MiB
# by default): stay well inside both, with room for the command line.
MAX_ENV_ENTRY_BYTES = 128 * 1024 - 1
MAX_ENV_TOTAL_BYTES = 1024 * 1024
# The kernel's largest CFS quota (cpu.max): (2^44 - 1) microseconds.
MAX_CPU_QUOTA = (1 << 44) - 1
MIN_CPU_QUOTA = 1000
# Throttle devices under these are links the web cannot resolve: left to the host.
_DEVICE_LINK_DIRS = ("/dev/disk/", "/dev/mapper/")
DEFAULT_NETWORK = "bridge"


class HostMismatch(InvalidRequest):
    """A spec field the host cannot honour; `field` names it (also in details)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}", details={"field": field})
        self.field = field


class ImageMissing(HostMismatch):
    """The image is not on the host: 404, which Docker clients answer by pulling it first."""

    status = 404
    code = "no_such_image"


def problems(spec: dict, host) -> list[HostMismatch]:
    """Every field of `spec` that `host` (as last reported) cannot honour, in field order."""
    found = []
    for check in (_image, _env, _stop_signal, _network, _limits):
        found += check(spec, host)
    return found


def check(spec: dict, host) -> None:
    """Raise the first HostMismatch (400) of `spec` on `host`."""
    found = problems(spec, host)
    if found:
        raise found[0]


def _image(spec, host):
    from images import ownership
    from images.models import Image

    ref = spec.get("image")
    if not isinstance(ref, str):
        return []
    if ownership.find(host, ref) is not None:
        return []
    # A host that has not reported any image yet (its agent never synced) is not judged
    # (asked only when the image is not found: the common create makes one query, not two).
    if not Image.objects.filter(host_id=host.pk).exists():
        return []
    return [ImageMissing("image", f"{ref!r} is not on host {host.name}; pull or import it")]


def _env(spec, host):
    env = [e for e in spec.get("env") or [] if isinstance(e, str)]
    sizes = [len(e.encode()) + 1 for e in env]
    for entry, size in zip(env, sizes, strict=True):
        if size > MAX_ENV_ENTRY_BYTES:
            key = entry.partition("=")[0][:64]
            return [
                HostMismatch(
                    "env",
                    f"variable {key} is {size} bytes; one variable may have at most "
                    f"{MAX_ENV_ENTRY_BYTES} bytes",
                )
            ]
    if sum(sizes) > MAX_ENV_TOTAL_BYTES:
        return [
            HostMismatch(
                "env",
                f"the environment is {sum(sizes)} bytes; at most {MAX_ENV_TOTAL_BYTES} in all",
            )
        ]
    return []


def signal_number(value) -> int | None:
    """The number of a signal written as Docker accepts it (KILL, SIGKILL, 9), else None;
    mirrors runtime/signals.py."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = str(value).strip().upper()
        if text.isascii() and text.isdigit():
            number = int(text)
        else:
            name = text if text.startswith("SIG") else "SIG" + text
            try:
                number = int(signal.Signals[name])
            except KeyError:
                return None
    return number if 1 <= number <= 64 else None


def _stop_signal(spec, host):
    value = spec.get("stop_signal", "SIGTERM")
    if signal_number(value) is None:
        return [HostMismatch("stop_signal", f"unknown signal {value!r} (use SIGTERM, TERM or 15)")]
    return []


def _network(spec, host):
    from networks.models import Network

    net = spec.get("network") or {}
    found = []
    for entry in net.get("extra_hosts") or []:
        name, _, addr = str(entry).partition(":")
        try:
            ipaddress.ip_address(addr)
        except ValueError:
            name = ""
        if not name:
            found.append(
                HostMismatch("network.extra_hosts", f"invalid entry {entry!r} (use name:ip)")
            )
            break
    mac = net.get("mac_address")
    if isinstance(mac, str) and len(mac) == 17:
        first = int(mac[:2], 16)
        if first & 1:
            found.append(
                HostMismatch(
                    "network.mac_address",
                    f"{mac} is a broadcast or multicast address (the first byte must be even)",
                )
            )
        elif mac.replace(":", "") == "0" * 12:
            found.append(HostMismatch("network.mac_address", f"{mac} is not a usable address"))
    names = [n for n in net.get("networks") or [] if isinstance(n, str)]
    wanted = [n for n in dict.fromkeys(names) if n != DEFAULT_NETWORK]
    # No query is built for a spec on the default network only (most of them).
    rows = {
        n.name: n
        for n in (
            Network.objects.filter(host_id=host.pk, name__in=wanted).only(
                "name", "subnet", "gateway", "state"
            )
            if wanted
            else ()
        )
    }
    for name in wanted:
        if name not in rows:
            found.append(
                HostMismatch("network.networks", f"no network {name!r} on host {host.name}")
            )
            return found
    ip = net.get("ip_address")
    if ip and names and names[0] in rows and rows[names[0]].subnet:
        problem = _address_problem(ip, rows[names[0]])
        if problem:
            found.append(HostMismatch("network.ip_address", problem))
    return found


def _address_problem(ip: str, network) -> str:
    try:
        subnet = ipaddress.ip_network(network.subnet, strict=False)
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""  # the row is not ours to judge; the host will
    if address not in subnet:
        return f"{ip} is outside network {network.name!r} ({subnet})"
    if address in (subnet.network_address, subnet.broadcast_address):
        return f"{ip} is not a host address of network {network.name!r} ({subnet})"
    if network.gateway and ip == network.gateway:
        return f"{ip} is the gateway of network {network.name!r}"
    return ""


def parse_cpus(text: str) -> set[int] | None:
    """'0-3,8' -> {0, 1, 2, 3, 8}; None when malformed."""
    cpus = set()
    try:
        for part in str(text).strip().split(","):
            first, _, last = part.partition("-")
            low, high = int(first), int(last or first)
            if high < low or high > 65535:
                return None
            cpus.update(range(low, high + 1))
    except ValueError:
        return None
    return cpus


def _limits(spec, host):
    limits = spec.get("limits") or {}
    info = host.info if isinstance(host.info, dict) else {}
    found = []
    memory = limits.get("memory")
    total = info.get("mem_total")
    if isinstance(memory, int) and isinstance(total, int) and total > 0 and memory > total:
        found.append(
            HostMismatch(
                "limits.memory",
                f"{memory} bytes is more than host {host.name} has ({total} bytes)",
            )
        )
    wanted = limits.get("cpuset_cpus")
    online = parse_cpus(info["cpus"]) if isinstance(info.get("cpus"), str) else None
    if isinstance(wanted, str) and wanted:
        asked = parse_cpus(wanted)
        if asked is None:
            found.append(HostMismatch("limits.cpuset_cpus", f"invalid CPU list {wanted!r}"))
        elif online and not asked <= online:
            missing = ",".join(str(c) for c in sorted(asked - online)[:8])
            found.append(
                HostMismatch(
                    "limits.cpuset_cpus",
                    f"CPU {missing} is not on host {host.name} (it has {info['cpus']})",
                )
            )
    quota = limits.get("cpu_quota")
    if isinstance(quota, int) and quota not in (-1, 0):
        period = limits.get("cpu_period") or 100000
        if quota < MIN_CPU_QUOTA:
            found.append(HostMismatch("limits.cpu_quota", f"must be at least {MIN_CPU_QUOTA} µs"))
        elif quota > MAX_CPU_QUOTA:
            found.append(HostMismatch("limits.cpu_quota", f"must be at most {MAX_CPU_QUOTA} µs"))
        elif online and quota > period * len(online):
            found.append(
                HostMismatch(
                    "limits.cpu_quota",
                    f"{quota / period:g} CPUs asked; host {host.name} has {len(online)}",
                )
            )
    devices = info.get("block_devices")
    if isinstance(devices, list):
        for key in ("device_read_bps", "device_write_bps", "device_read_iops", "device_write_iops"):
            for item in limits.get(key) or []:
                path = item.get("path") if isinstance(item, dict) else None
                if not isinstance(path, str) or path.startswith(_DEVICE_LINK_DIRS):
                    continue
                if path not in devices:
                    found.append(
                        HostMismatch(f"limits.{key}", f"no block device {path} on host {host.name}")
                    )
                    return found
    return found
