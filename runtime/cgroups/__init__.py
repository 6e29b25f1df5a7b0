"""cgroup drivers: limits, freezing, accounting and teardown for cgroup v1 and v2 hosts.

`driver_for(config)` detects the layout once; keep the driver it returns.
"""

from runtime.cgroups.base import CgroupStats
from runtime.cgroups.detect import Layout, detect
from runtime.cgroups.devices import DEFAULT_DEVICE_RULES, DeviceRule
from runtime.cgroups.driver import CgroupDriver
from runtime.cgroups.v1 import V1Driver
from runtime.cgroups.v2 import V2Driver
from runtime.config import RuntimeConfig

__all__ = [
    "DEFAULT_DEVICE_RULES",
    "CgroupDriver",
    "CgroupStats",
    "DeviceRule",
    "Layout",
    "V1Driver",
    "V2Driver",
    "detect",
    "driver_for",
]


def driver_for(config: RuntimeConfig) -> V1Driver | V2Driver:
    """The driver for the cgroup layout found under config.cgroup_root."""
    layout = detect(config.cgroup_root)
    if layout.version == 2:
        return V2Driver(config, layout)
    return V1Driver(config, layout)
