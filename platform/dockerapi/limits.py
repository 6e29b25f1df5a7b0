"""HostConfig's resource fields -> Berth's limits (docker create and docker update)."""

from dockerapi.body_values import as_dict, integer
from dockerapi.errors import bad_request, not_supported

NANO = 1_000_000_000
DEFAULT_CPU_PERIOD = 100_000


def limits_of(host: dict) -> dict:
    limits = {}
    memory = integer(host.get("Memory"), "Memory")
    if memory:
        limits["memory"] = memory
    swap = integer(host.get("MemorySwap"), "MemorySwap")
    if swap:
        limits["memory_swap"] = swap
    if host.get("MemorySwappiness") not in (None, -1):
        raise not_supported("MemorySwappiness (--memory-swappiness)")
    nano = integer(host.get("NanoCpus"), "NanoCpus")
    quota = integer(host.get("CpuQuota"), "CpuQuota")
    period = integer(host.get("CpuPeriod"), "CpuPeriod")
    if nano and (quota or period):
        raise bad_request("Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set")
    if nano:
        limits["cpu_period"] = DEFAULT_CPU_PERIOD
        limits["cpu_quota"] = max(1000, nano * DEFAULT_CPU_PERIOD // NANO)
    if quota:
        limits["cpu_quota"] = quota
    if period:
        limits["cpu_period"] = period
    for docker_key, key in (("CpuShares", "cpu_shares"), ("BlkioWeight", "blkio_weight")):
        value = integer(host.get(docker_key), docker_key)
        if value:
            limits[key] = value
    if host.get("CpusetCpus"):
        limits["cpuset_cpus"] = host["CpusetCpus"]
    pids = host.get("PidsLimit")
    if pids not in (None, 0):
        limits["pids"] = integer(pids, "PidsLimit") if pids > 0 else -1
    for docker_key, key in (
        ("BlkioDeviceReadBps", "device_read_bps"),
        ("BlkioDeviceWriteBps", "device_write_bps"),
        ("BlkioDeviceReadIOps", "device_read_iops"),
        ("BlkioDeviceWriteIOps", "device_write_iops"),
    ):
        rates = host.get(docker_key) or []
        if not isinstance(rates, list):
            raise bad_request(f"{docker_key} must be a list")
        if rates:
            limits[key] = [
                {"path": as_dict(r, docker_key).get("Path"), "rate": r.get("Rate")} for r in rates
            ]
    return limits
