"""The dangerous-option policy: which permissions a container spec needs. No Django imports.

The web calls it before it stores a spec; the host agent calls it again on the final spec it
reloaded (defense in depth). Input is the plain dict of runtime ContainerSpec.to_dict() and the
set of concrete permission codes the creator holds on the container's team and host.
"""

import posixpath

# Docker's default capability set (moby daemon/pkg/oci/defaults.go); adding one of these is a no-op.
DEFAULT_CAPABILITIES = frozenset(
    [
        "CHOWN",
        "DAC_OVERRIDE",
        "FSETID",
        "FOWNER",
        "MKNOD",
        "NET_RAW",
        "SETGID",
        "SETUID",
        "SETFCAP",
        "SETPCAP",
        "NET_BIND_SERVICE",
        "SYS_CHROOT",
        "KILL",
        "AUDIT_WRITE",
    ]
)
ROOT_USERS = frozenset({"", "0", "root"})
LOW_PORT_LIMIT = 1024
ANY_ADDRESS = frozenset({"", "0.0.0.0", "::"})


def normalize_capability(name) -> str:
    """'sys_admin', 'CAP_SYS_ADMIN', ' Sys_Admin ' -> 'SYS_ADMIN'; 'all' -> 'ALL'."""
    cap = str(name).strip().upper()
    return cap[4:] if cap.startswith("CAP_") else cap


def path_within(path: str, prefixes) -> bool:
    """Whether the normalised absolute `path` lies inside one of the allowed host prefixes."""
    if not isinstance(path, str) or not path.startswith("/"):
        return False
    norm = posixpath.normpath(path)
    for prefix in prefixes:
        if not isinstance(prefix, str) or not prefix.startswith("/"):
            continue
        base = posixpath.normpath(prefix)
        if base == "/" or norm == base or norm.startswith(base + "/"):
            return True
    return False


def volume_host_path(options) -> str | None:
    """The host path a volume's driver options bind (device=/x, o=bind), or None."""
    if not isinstance(options, dict):
        return None
    device = options.get("device")
    if isinstance(device, str) and device.strip():
        return device.strip()
    opts = str(options.get("o", "")) + "," + str(options.get("type", ""))
    if "bind" in opts.split(","):
        return "/"  # a bind without a device: treat as the whole host
    return None


def _mount_binds(mount: dict, volume_options: dict) -> str | None:
    """The host path a mount binds, for binds and for volumes disguised as binds."""
    kind = mount.get("type")
    source = mount.get("source") or ""
    if kind == "bind":
        return source or "/"
    if kind == "volume":
        if not isinstance(source, str) or "/" in source or source.startswith((".", "~")):
            return source if isinstance(source, str) and source.startswith("/") else "/"
        return volume_host_path(volume_options.get(source))
    return None


def violations(
    spec, granted, *, bind_paths=(), volume_options=None, default_limits=None
) -> list[str]:
    """The dangerous options in `spec` that `granted` (permission codes) does not allow.

    `default_limits` are the creator's role defaults: a role with defaults may not ask for no limit.
    """
    if not isinstance(spec, dict):
        return ["the container spec must be an object"]
    granted = frozenset(granted)
    volume_options = volume_options or {}
    problems: list[str] = []

    def need(permission: str, what: str):
        if permission not in granted:
            problems.append(f"{what} requires permission {permission}")

    if spec.get("privileged"):
        need("container.privileged", "privileged mode")
    for mount in spec.get("mounts") or []:
        if not isinstance(mount, dict):
            problems.append("a mount must be an object")
            continue
        host_path = _mount_binds(mount, volume_options)
        if host_path is None:
            continue
        what = f"bind mount of host path {host_path}"
        if mount.get("type") == "volume":
            what = f"volume {mount.get('source')!r} (a bind of host path {host_path})"
        if "container.bind_mount" not in granted:
            need("container.bind_mount", what)
        elif not path_within(host_path, bind_paths):
            problems.append(f"{what} is outside the host paths your role allows")
    namespaces = spec.get("namespaces") or {}
    if not isinstance(namespaces, dict):
        problems.append("namespaces must be an object")
        namespaces = {}
    for kind, value in sorted(namespaces.items()):
        if kind == "user" and value == "host":
            # User namespaces are on by default: asking for the host's makes root inside the
            # container root on the host.
            need(
                "container.host_namespaces",
                "the host user namespace (--userns host: root in the container is root on the host)",
            )
        elif value == "host":
            need("container.host_namespaces", f"the host {kind} namespace")
    network = spec.get("network") or {}
    if isinstance(network, dict) and network.get("mode") == "host":
        need("container.host_namespaces", "the host network namespace")
    added = {normalize_capability(c) for c in spec.get("cap_add") or []}
    extra = sorted(added - DEFAULT_CAPABILITIES)
    if extra:
        need("container.cap_add", f"adding capabilities {', '.join(extra)}")
    if spec.get("devices"):
        need("container.devices", "host devices")
    if spec.get("seccomp") is False:
        need("container.unconfined", "turning seccomp off")
    if spec.get("no_new_privileges") is False:
        need("container.unconfined", "turning no_new_privileges off")
    ports = network.get("ports") if isinstance(network, dict) else None
    for port in ports or []:
        if not isinstance(port, dict):
            problems.append("a port mapping must be an object")
            continue
        host_port = port.get("host_port") or 0
        if isinstance(host_port, int) and 0 < host_port < LOW_PORT_LIMIT:
            need("container.low_ports", f"publishing host port {host_port}")
        if (port.get("host_ip") or "") not in ANY_ADDRESS:
            need(
                "container.low_ports",
                f"publishing on the chosen host address {port.get('host_ip')}",
            )
    limits = spec.get("limits") if isinstance(spec.get("limits"), dict) else {}
    for key in ("memory", "pids"):
        if key in (default_limits or {}) and limits.get(key) in (None, -1):
            problems.append(
                f"{key} without a limit is not allowed for your role (its default is {default_limits[key]})"
            )
    return problems


def exec_violations(user, container_team_member: bool, granted) -> list[str]:
    """Exec as root into a container of a team you are not in needs container.exec_root."""
    name = "" if user is None else str(user).partition(":")[0].strip()
    # The runtime reads any all-digit name as a uid, so "00" and "000" are root as well.
    if (
        (name in ROOT_USERS or (name.isdigit() and int(name) == 0))
        and not container_team_member
        and "container.exec_root" not in frozenset(granted)
    ):
        return [
            "exec as root into another team's container requires permission container.exec_root"
        ]
    return []


def apply_default_limits(spec: dict, defaults: dict) -> dict:
    """Fill the limits the request left unset (None) from the role's defaults; returns spec."""
    limits = spec.setdefault("limits", {})
    for key, value in (defaults or {}).items():
        if limits.get(key) is None:
            limits[key] = value
    return spec
