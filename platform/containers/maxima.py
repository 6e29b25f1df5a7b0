"""Limit maxima per role: the most a container spec may ask for. No Django imports.

Keys of a role's `max_limits` (all integers):
  memory, memory_swap        bytes
  cpus                       thousandths of a CPU (cpu_quota / cpu_period * 1000)
  pids                       processes
  blkio_bps, blkio_iops      per-device throttle rate (read and write alike)
  ports                      published ports (a range counts each port)
A limit the role caps may not be left unlimited. The web checks them through the gate, and
the host agent again on the stored spec.
"""

KEYS = ("memory", "memory_swap", "cpus", "pids", "blkio_bps", "blkio_iops", "ports")
GIB, MIB = 1024**3, 1024**2


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
}
_UNLIMITED_IS_ZERO = ("blkio_bps", "blkio_iops", "ports")  # none asked: nothing to cap


def violations(spec: dict, max_limits: dict) -> list[str]:
    """What in `spec` exceeds `max_limits`, each saying the limit, the value asked, the maximum."""
    if not max_limits:
        return []
    wanted = asked(spec)
    problems = []
    for key in KEYS:
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
