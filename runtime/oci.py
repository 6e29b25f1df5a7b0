"""A ContainerSpec written as an OCI runtime config.json (what runc and crun run)."""

from __future__ import annotations

import json
from pathlib import Path

from runtime.config import RuntimeConfig
from runtime.container import plan, rootfs
from runtime.spec import ContainerSpec

_NS = {"pid": "pid", "ipc": "ipc", "uts": "uts", "cgroup": "cgroup"}


def _mounts(spec: ContainerSpec, config) -> list[dict]:
    ro = [] if spec.privileged else ["ro"]
    base = [
        {
            "destination": "/proc",
            "type": "proc",
            "source": "proc",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", *ro],
        },
    ]
    for m in plan.mounts(spec, config or RuntimeConfig()):
        if m["type"] == "tmpfs":
            opts = ["nosuid", "nodev"] + [o for o in m["data"].split(",") if o]
            base.append(
                {"destination": m["target"], "type": "tmpfs", "source": "tmpfs", "options": opts}
            )
        else:
            base.append(
                {
                    "destination": m["target"],
                    "type": "bind",
                    "source": m["source"],
                    "options": ["rbind", "ro" if m["read_only"] else "rw"],
                }
            )
    return base


def _resources(spec: ContainerSpec, default_pids: int) -> dict:
    lim = spec.limits
    res: dict = {
        "devices": [{"allow": False, "access": "rwm"}]
        + [
            {"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"}
            for _, major, minor in rootfs.STANDARD_DEVICES
        ]
    }
    if spec.privileged:
        res["devices"] = [{"allow": True, "access": "rwm"}]
    if lim.memory is not None:
        res["memory"] = {
            "limit": lim.memory,
            **({"swap": lim.memory_swap} if lim.memory_swap else {}),
        }
    cpu = {
        k: v
        for k, v in (
            ("shares", lim.cpu_shares),
            ("quota", lim.cpu_quota),
            ("period", lim.cpu_period),
            ("cpus", lim.cpuset_cpus),
        )
        if v is not None
    }
    if cpu:
        res["cpu"] = cpu
    pids = default_pids if lim.pids is None else lim.pids
    if pids and pids > 0:
        res["pids"] = {"limit": pids}
    return res


def to_oci(
    spec: ContainerSpec,
    rootfs_path: str,
    *,
    image_config: dict | None = None,
    hostname: str | None = None,
    cgroups_path: str | None = None,
    default_pids: int = 2048,
    config=None,
) -> dict:
    """The OCI runtime spec (config.json) for `spec` over the root filesystem at rootfs_path."""
    image_config = image_config or {}
    hostname = hostname or spec.hostname or "berth"
    caps = ["CAP_" + c for c in spec.effective_capabilities]
    user = spec.user or "0:0"
    uid, _, gid = user.partition(":")
    if not uid.isdigit() or (gid and not gid.isdigit()):
        raise ValueError(
            "config.json needs a numeric user (uid[:gid]); names are resolved by the runtime"
        )
    namespaces = [{"type": "mount"}]
    for kind, oci_kind in _NS.items():
        if spec.namespaces.get(kind, "private") == "private":
            namespaces.append({"type": oci_kind})
    if spec.network.mode in ("bridge", "none"):
        namespaces.append({"type": "network"})
    cfg = image_config.get("config") or {}
    linux = {
        "namespaces": namespaces,
        "resources": _resources(spec, default_pids),
        "maskedPaths": [] if spec.privileged else list(rootfs.MASKED_PATHS),
        "readonlyPaths": [] if spec.privileged else list(rootfs.READONLY_PATHS),
    }
    if cgroups_path:
        linux["cgroupsPath"] = cgroups_path
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": spec.tty,
            "user": {"uid": int(uid), "gid": int(gid or 0)},
            "args": plan.command_line(spec, image_config),
            "env": plan.environment(spec, image_config, hostname),
            "cwd": spec.working_dir or cfg.get("WorkingDir") or "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": spec.no_new_privileges and not spec.privileged,
        },
        "root": {"path": rootfs_path, "readonly": spec.read_only_rootfs},
        "hostname": hostname,
        "mounts": _mounts(spec, config),
        "linux": linux,
    }


def write_bundle(bundle: Path, spec: ContainerSpec, rootfs_path: str, **kwargs) -> Path:
    """Write bundle/config.json for `spec`; returns its path."""
    bundle.mkdir(parents=True, exist_ok=True)
    path = bundle / "config.json"
    path.write_text(json.dumps(to_oci(spec, rootfs_path, **kwargs), indent=2))
    return path
