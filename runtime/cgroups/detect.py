"""Find out which cgroup layout the host has: v1 hierarchies (also hybrid) or pure v2."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from runtime.errors import KernelError

# The v1 controllers Berth uses, each mounted as its own hierarchy (or co-mounted, e.g.
# cpu,cpuacct with cpu and cpuacct as symlinks to it).
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "freezer", "devices")


@dataclass(frozen=True)
class Layout:
    """The detected layout: version, and for v1 the mount of each controller found."""

    version: int
    root: str
    mounts: dict[str, str] = field(default_factory=dict)


def detect(cgroup_root) -> Layout:
    """Detect under `cgroup_root`; a v1 host with a cgroup2 mount at unified/ is v1 (hybrid)."""
    root = os.fspath(cgroup_root)
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        return Layout(2, root)
    mounts = {}
    for name in V1_CONTROLLERS:
        path = os.path.join(root, name)
        if os.path.exists(os.path.join(path, "cgroup.procs")):
            # Resolve symlinks so co-mounted controllers share one directory tree.
            mounts[name] = os.path.realpath(path)
    if not mounts:
        raise KernelError(f"no cgroup v1 controllers or cgroup2 mount found under {root}")
    return Layout(1, root, mounts)
