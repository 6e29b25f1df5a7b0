"""Turn a container record (spec + image config) into the plain plan the child executes.

Everything that can fail on bad input is computed here, in the parent, before any fork,
so a refused spec leaves nothing behind.
"""

from __future__ import annotations

import os
import stat

from runtime import linux
from runtime.container import hardening
from runtime.container.paths import ContainerPaths
from runtime.errors import InvalidSpec
from runtime.spec import ContainerSpec

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Mounting over these would undo masking or expose the host's kernel interfaces.
_FORBIDDEN_TARGETS = ("/proc", "/sys")


def command_line(spec: ContainerSpec, image_config: dict) -> list[str]:
    """Docker's rule: entrypoint + command, where --entrypoint also resets the image's Cmd."""
    cfg = image_config.get("config") or {}
    if spec.entrypoint is not None:
        entry = list(spec.entrypoint)
        cmd = list(spec.command) if spec.command is not None else []
    else:
        entry = list(cfg.get("Entrypoint") or [])
        cmd = list(spec.command) if spec.command is not None else list(cfg.get("Cmd") or [])
    return entry + cmd


def environment(spec: ContainerSpec, image_config: dict, hostname: str) -> list[str]:
    """Image Env, overridden key by key by the spec's env; PATH, HOSTNAME and TERM filled in."""
    cfg = image_config.get("config") or {}
    merged: dict[str, str] = {"PATH": DEFAULT_PATH[5:], "HOSTNAME": hostname}
    for item in list(cfg.get("Env") or []) + list(spec.env):
        key, _, value = item.partition("=")
        merged[key] = value
    if spec.tty:
        merged.setdefault("TERM", "xterm")
    return [f"{k}={v}" for k, v in merged.items()]


def _device_nodes(spec: ContainerSpec) -> tuple[list[tuple[str, int, int]], list[str]]:
    nodes, rules = [], []
    for item in spec.devices:
        parts = item.split(":")
        host = parts[0]
        inside = parts[1] if len(parts) > 1 and parts[1] else host
        access = parts[2] if len(parts) > 2 else "rwm"
        name = inside[len("/dev/") :] if inside.startswith("/dev/") else ""
        if not name or "/" in name:
            raise InvalidSpec(
                f"device path inside the container must be /dev/<name>, got {inside!r}"
            )
        try:
            st = os.stat(host)
        except OSError as err:
            raise InvalidSpec(
                f"error gathering device information while adding device {host!r}: {err.strerror}"
            ) from None
        if not stat.S_ISCHR(st.st_mode):
            raise InvalidSpec(f"{host} is not a character device")
        nodes.append((name, os.major(st.st_rdev), os.minor(st.st_rdev)))
        rules.append(f"c {os.major(st.st_rdev)}:{os.minor(st.st_rdev)} {access}")
    return nodes, rules


def device_rules(spec: ContainerSpec) -> list[str]:
    """Extra device cgroup rules for --device."""
    return _device_nodes(spec)[1]


def mounts(spec: ContainerSpec, config) -> list[dict]:
    """User mounts with host sources resolved; named volumes created on demand."""
    result = []
    for m in spec.mounts:
        target = os.path.normpath(m.target)
        if any(target == t or target.startswith(t + "/") for t in _FORBIDDEN_TARGETS):
            raise InvalidSpec(f"cannot mount over {target}: it is managed by the runtime")
        source, data = m.source, ",".join(m.options)
        if m.type == "volume":
            source = str(config.volumes_dir / m.source / "_data")
        elif m.type == "bind" and not os.path.exists(m.source):
            raise InvalidSpec(
                f'invalid mount config for type "bind": bind source path does not exist: {m.source}'
            )
        result.append(
            {
                "type": m.type,
                "source": source,
                "target": target,
                "read_only": m.read_only,
                "data": data,
            }
        )
    return result


def ensure_volumes(plan_mounts: list[dict]) -> None:
    """Create the _data directories of named volumes (kept after the container goes)."""
    for m in plan_mounts:
        if m["type"] == "volume":
            os.makedirs(m["source"], mode=0o755, exist_ok=True)


def unshare_flags(spec: ContainerSpec) -> int:
    """The namespaces the child creates itself (PID is made by its parent, before fork)."""
    flags = linux.CLONE_NEWNS
    for kind, flag in (
        ("uts", linux.CLONE_NEWUTS),
        ("ipc", linux.CLONE_NEWIPC),
        ("cgroup", linux.CLONE_NEWCGROUP),
    ):
        if spec.namespaces.get(kind, "private") == "private":
            flags |= flag
    if spec.network.mode in ("bridge", "none"):
        flags |= linux.CLONE_NEWNET
    return flags


def check_supported(spec: ContainerSpec) -> None:
    """Refuse what this runtime cannot honour yet, rather than silently ignoring it.

    A private user namespace goes with namespaces of its own or joined from a container in
    the same user namespace (runtime.container.userns.resolve checks the joined one).
    """
    user = spec.namespaces.get("user")
    if user in (None, "host"):
        return
    if user != "private":
        raise InvalidSpec("the user namespace can be 'host' or 'private', not joined")
    if spec.privileged:
        raise InvalidSpec(
            "a privileged container cannot have a private user namespace (use --userns host)"
        )
    for kind, value in spec.namespaces.items():
        if kind != "user" and value == "host":
            raise InvalidSpec(
                f"with a private user namespace, the {kind} namespace cannot be the host's"
            )
    if spec.network.mode == "host":
        raise InvalidSpec("a private user namespace cannot use network mode 'host'")


def build(
    spec: ContainerSpec,
    image_config: dict,
    lower: list[str],
    paths: ContainerPaths,
    hostname: str,
    *,
    procs_files: list[str],
    etc_files: dict[str, str],
) -> dict:
    """The child's plan (fds are added by the launcher)."""
    nodes, _ = _device_nodes(spec)
    cfg = image_config.get("config") or {}
    return {
        "hostname": hostname,
        "tty": spec.tty,
        "privileged": spec.privileged,
        "procs_files": procs_files,
        "unshare": unshare_flags(spec),
        "join_fds": [],
        "rootfs": {
            "lower": list(reversed(lower)),  # overlayfs wants the top layer first
            "upper": str(paths.upper),
            "work": str(paths.work),
            "merged": str(paths.merged),
            "read_only": spec.read_only_rootfs,
        },
        "devices": nodes,
        "etc_files": etc_files,
        "mounts": mounts(spec, paths.config),
        "argv": command_line(spec, image_config),
        "env": environment(spec, image_config, hostname),
        "workdir": spec.working_dir or cfg.get("WorkingDir") or "/",
        "user": spec.user or cfg.get("User") or None,
        "caps": hardening.container_caps(spec.effective_capabilities),
        "no_new_privs": spec.no_new_privileges and not spec.privileged,
        "last_cap": hardening.last_cap(),
        "fifo": None,
        "init": spec.init,
        "seccomp": seccomp_program(spec),
    }


def seccomp_program(spec: ContainerSpec) -> bytes | None:
    """The default seccomp filter (Docker's allow-list) for the spec's capabilities, or None."""
    if not spec.seccomp or spec.privileged:
        return None
    import runtime.seccomp  # local: compiling the profile is only needed when filtering

    return runtime.seccomp.build_filter(spec.effective_capabilities)
