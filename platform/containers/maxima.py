"""Limit maxima per role: the most a container spec may ask for. No Django imports.

Keys of a role's `max_limits` (all integers):
  memory, memory_swap        bytes
  cpus                       thousandths of a CPU (cpu_quota / cpu_period * 1000)
  pids                       processes
  blkio_bps, blkio_iops      per-device throttle rate (read and write alike)
  ports                      published ports (a range counts each port)
  stop_timeout               seconds of grace a stop may give (the spec's `stop_timeout` and
                             a stop's or restart's `timeout`); DEFAULT_STOP_TIMEOUT_MAX when the
                             role names none, for every role: a stop that waits holds nothing on
                             the host (agent/waiting.py), but its operation stays open that long
A limit the role caps may not be left unlimited. The web checks them through the gate, and
the host agent again on the stored spec.
"""

KEYS = ("memory", "memory_swap", "cpus", "pids", "blkio_bps", "blkio_iops", "ports", "stop_timeout")
GIB, MIB = 1024**3, 1024**2
DEFAULT_STOP_TIMEOUT_MAX = 60  # seconds; a role's max_limits.stop_timeout replaces it


def _size(value: int) -> str:
    if value >= GIB:
        return f"{value / GIB:g} GiB"
    if value >= MIB:
        return f"{value / MIB:g} MiB"
    return f"{value} bytes"


def _cpus(thousandths: int) -> str:
    return f"{thousandths / 1000:g} CPUs"


def asked(spec: dict) -> dict:
    """What a spec asks for, in the units of KEYS (None: unlimited)."""
    limits = spec.get("limits") if isinstance(spec.get("limits"), dict) else {}
    network = spec.get("network") if isinstance(spec.get("network"), dict) else {}

    def number(key):
        value = limits.get(key)
        return None if value in (None, -1) or not isinstance(value, int) else value

    quota, period = number("cpu_quota"), number("cpu_period") or 100000
    rates = {"bps": [], "iops": []}
    for kind in rates:
        for key in (f"device_read_{kind}", f"device_write_{kind}"):
            for item in limits.get(key) or []:
                if isinstance(item, dict) and isinstance(item.get("rate"), int):
                    rates[kind].append(item["rate"])
    ports = 0
    for port in network.get("ports") or []:
        if isinstance(port, dict):
            first, last = port.get("host_port") or 0, port.get("host_port_end") or 0
            ports += last - first + 1 if last and first else 1
    if network.get("publish_all"):
        ports += 1  # at least one; the image's exposed ports are known only on the host
    swap = limits.get("memory_swap")
    return {
        "memory": number("memory"),
        # Not set: derived from the memory limit (Docker's rule), so nothing more to cap.
        "memory_swap": 0 if swap is None else number("memory_swap"),
        "cpus": None if quota is None else -(-quota * 1000 // period),  # rounded up
        "pids": number("pids"),
        "blkio_bps": max(rates["bps"], default=0),
        "blkio_iops": max(rates["iops"], default=0),
        "ports": ports,
        "stop_timeout": spec.get("stop_timeout")
        if isinstance(spec.get("stop_timeout"), int)
        else 0,
    }


_SHOW = {"memory": _size, "memory_swap": _size, "cpus": _cpus}
_NAME = {
    "memory": "memory",
    "memory_swap": "memory+swap",
    "cpus": "CPU",
    "pids": "pids",
    "blkio_bps": "block IO rate (bytes/s)",
    "blkio_iops": "block IO rate (IO/s)",
    "ports": "published ports",
    "stop_timeout": "stop timeout",
}
_UNLIMITED_IS_ZERO = ("blkio_bps", "blkio_iops", "ports")  # none asked: nothing to cap


def stop_timeout_cap(max_limits: dict | None) -> int:
    """The longest stop grace period allowed: the role's maximum, else the policy default."""
    cap = (max_limits or {}).get("stop_timeout")
    if isinstance(cap, int) and not isinstance(cap, bool):
        return cap
    return DEFAULT_STOP_TIMEOUT_MAX


def stop_timeout_problem(seconds, max_limits: dict | None, *, what: str = "timeout") -> str:
    """Why a grace period of `seconds` is refused ("" when it is allowed)."""
    cap = stop_timeout_cap(max_limits)
    if isinstance(seconds, int) and seconds > cap:
        return (
            f"{what}: {seconds} s asked, the maximum for your role is {cap} s (the container "
            "is killed after its grace period; ask an admin for a role with a higher "
            "stop_timeout maximum)"
        )
    return ""


def violations(spec: dict, max_limits: dict) -> list[str]:
    """What in `spec` exceeds `max_limits`, each saying the limit, the value asked, the maximum."""
    wanted = asked(spec)
    # Capped for every role: the policy default applies where the role names no maximum.
    problem = stop_timeout_problem(wanted["stop_timeout"], max_limits, what="stop_timeout")
    problems = [problem] if problem else []
    if not max_limits:
        return problems
    for key in KEYS:
        if key == "stop_timeout":
            continue
        cap = max_limits.get(key)
        if not isinstance(cap, int) or isinstance(cap, bool):
            continue
        show = _SHOW.get(key, str)
        value = wanted[key]
        if value is None and key not in _UNLIMITED_IS_ZERO:
            problems.append(
                f"{_NAME[key]}: no limit asked, but your role allows at most {show(cap)}"
            )
        elif value is not None and value > cap:
            problems.append(
                f"{_NAME[key]}: {show(value)} asked, the maximum for your role is {show(cap)}"
            )
    return problems


def valid(max_limits) -> str:
    """Why `max_limits` is not a valid maxima object ("" when it is)."""
    if not isinstance(max_limits, dict) or set(max_limits) - set(KEYS):
        return f"an object with keys from {', '.join(KEYS)}"
    for value in max_limits.values():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return "maxima are non-negative integers"
    return ""
