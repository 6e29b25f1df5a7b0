"""Container checks (CIS Docker Benchmark section 5), on the stored spec and its image config.

Each test takes (spec, image_config) where spec is ContainerSpec.to_dict() as stored and
image_config the image's "config" object ({} when the image is not known on the host).
"""

import posixpath

from compliance.checks.registry import check
from containers.policy import DEFAULT_CAPABILITIES, normalize_capability

# Host paths whose bind gives away the host (CIS 5.5) or its container engine (CIS 5.31).
SENSITIVE_PATHS = (
    "/",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib64",
    "/proc",
    "/sys",
    "/usr",
    "/bin",
    "/sbin",
    "/root",
    "/run",
    "/var/run",
    "/var/lib/berth",
    "/var/lib/docker",
)
ROOT_USERS = frozenset({"", "0", "root"})
MAX_RESTARTS = 5  # CIS 5.14: on-failure with at most 5 retries


def _limits(spec) -> dict:
    limits = spec.get("limits")
    return limits if isinstance(limits, dict) else {}


def _network(spec) -> dict:
    network = spec.get("network")
    return network if isinstance(network, dict) else {}


def _sensitive(path: str) -> bool:
    norm = posixpath.normpath(path)
    if norm == "/":
        return True
    return any(
        p != "/" and (norm == p or norm.startswith(p + "/")) for p in SENSITIVE_PATHS
    ) or norm.endswith((".sock", "/docker.sock"))


@check(
    "container.privileged",
    "Container runs privileged",
    "critical",
    "container",
    "Recreate without privileged mode; add only the capabilities and devices it needs.",
    cis="5.4",
)
def privileged(spec, image_config):
    return "privileged mode is on" if spec.get("privileged") else None


@check(
    "container.host-namespaces",
    "Container shares a namespace with the host",
    "high",
    "container",
    "Recreate with private namespaces (no --pid/--ipc/--uts/--network/--userns host).",
    cis="5.9, 5.15, 5.16, 5.20, 5.30",
)
def host_namespaces(spec, image_config):
    shared = sorted(
        kind for kind, value in (spec.get("namespaces") or {}).items() if value == "host"
    )
    if _network(spec).get("mode") == "host":
        shared.append("network")
    return f"host {', '.join(shared)} namespace shared" if shared else None


@check(
    "container.sensitive-mounts",
    "Sensitive host paths are mounted",
    "high",
    "container",
    "Mount a named volume or a narrow, dedicated host directory instead of system paths or sockets.",
    cis="5.5, 5.31",
)
def sensitive_mounts(spec, image_config):
    bad = [
        m.get("source") or "/"
        for m in spec.get("mounts") or []
        if isinstance(m, dict) and m.get("type") == "bind" and _sensitive(m.get("source") or "/")
    ]
    return f"host path(s) {', '.join(bad)} mounted" if bad else None


@check(
    "container.capabilities",
    "Capabilities beyond the default set",
    "high",
    "container",
    "Remove the added capabilities (cap_add) the workload does not need.",
    cis="5.3",
)
def capabilities(spec, image_config):
    extra = sorted(
        {normalize_capability(c) for c in spec.get("cap_add") or []} - DEFAULT_CAPABILITIES
    )
    return f"added capabilities {', '.join(extra)}" if extra else None


@check(
    "container.devices",
    "Host devices exposed",
    "high",
    "container",
    "Recreate without host devices, or expose only the one device it needs, read-only.",
    cis="5.17",
)
def devices(spec, image_config):
    found = spec.get("devices") or []
    return f"host devices {', '.join(map(str, found))}" if found else None


@check(
    "container.memory-limit",
    "No memory limit",
    "medium",
    "container",
    "Set a memory limit (limits.memory, docker run --memory).",
    cis="5.10",
)
def memory_limit(spec, image_config):
    value = _limits(spec).get("memory")
    return None if isinstance(value, int) and value > 0 else "no memory limit"


@check(
    "container.pids-limit",
    "No pids limit",
    "medium",
    "container",
    "Set a pids limit (limits.pids, docker run --pids-limit).",
    cis="5.28",
)
def pids_limit(spec, image_config):
    value = _limits(spec).get("pids")
    # None means the runtime's default limit, which Berth always sets; -1 is unlimited.
    return (
        "pids unlimited"
        if value is not None and (not isinstance(value, int) or value <= 0)
        else None
    )


@check(
    "container.writable-rootfs",
    "Root filesystem is writable",
    "low",
    "container",
    "Run with a read-only root filesystem (read_only_rootfs) and volumes or tmpfs for writes.",
    cis="5.12",
)
def writable_rootfs(spec, image_config):
    return None if spec.get("read_only_rootfs") else "root filesystem is writable"


@check(
    "container.seccomp",
    "seccomp turned off",
    "high",
    "container",
    "Recreate with the default seccomp profile (seccomp true).",
    cis="5.21",
)
def seccomp(spec, image_config):
    return "seccomp is off (unconfined)" if spec.get("seccomp") is False else None


@check(
    "container.no-new-privileges",
    "no_new_privileges turned off",
    "medium",
    "container",
    "Recreate with no_new_privileges (the default): setuid binaries then gain nothing.",
    cis="5.25",
)
def no_new_privileges(spec, image_config):
    return "no_new_privileges is off" if spec.get("no_new_privileges") is False else None


@check(
    "container.user-namespace",
    "User namespace off",
    "low",
    "container",
    "Recreate without --userns host (and without what keeps the host's user namespace: "
    "privileged mode, host pid/ipc/uts/cgroup namespaces, host network) so root inside is not "
    "root on the host.",
    cis="2.10",
)
def user_namespace(spec, image_config):
    # New containers get a private user namespace by default (docs/userns.md); these keep
    # the host's, as the runtime decides at create.
    namespaces = spec.get("namespaces") or {}
    if namespaces.get("user") == "host":
        return "the host user namespace (--userns host)"
    if spec.get("privileged"):
        return "privileged: the host user namespace"
    shared = sorted(k for k, v in namespaces.items() if k != "user" and v == "host")
    if shared:
        return f"host {', '.join(shared)} namespace: the host user namespace"
    if (spec.get("network") or {}).get("mode") == "host":
        return "host network: the host user namespace"
    return None


@check(
    "container.privileged-ports",
    "Privileged host ports published",
    "medium",
    "container",
    "Publish on host ports of 1024 and above (put a proxy in front if a low port is needed).",
    cis="5.7",
)
def privileged_ports(spec, image_config):
    low = sorted(
        p["host_port"]
        for p in _network(spec).get("ports") or []
        if isinstance(p, dict) and isinstance(p.get("host_port"), int) and 0 < p["host_port"] < 1024
    )
    return f"host port(s) {', '.join(map(str, low))} published" if low else None


def _effective_user(spec, image_config) -> str:
    user = spec.get("user")
    if user is None:
        user = (image_config or {}).get("User") or ""
    return str(user).partition(":")[0].strip()


@check(
    "container.root-user",
    "Runs as root",
    "medium",
    "container",
    "Run as an unprivileged user (user: uid[:gid], or USER in the image).",
    cis="4.1",
)
def root_user(spec, image_config):
    name = _effective_user(spec, image_config)
    if name in ROOT_USERS or (name.isdigit() and int(name) == 0):
        return "the process runs as root"
    return None


@check(
    "container.restart-limit",
    "Restart policy without a limit",
    "low",
    "container",
    f"Use restart on-failure with at most {MAX_RESTARTS} retries.",
    cis="5.14",
)
def restart_limit(spec, image_config):
    restart = spec.get("restart") if isinstance(spec.get("restart"), dict) else {}
    name = restart.get("name") or "no"
    retries = restart.get("max_retries") or 0
    if name in ("always", "unless-stopped"):
        return f"restart policy {name} restarts without limit"
    if name == "on-failure" and not 0 < retries <= MAX_RESTARTS:
        return f"restart on-failure with max_retries {retries}"
    return None


@check(
    "container.healthcheck",
    "No health check",
    "low",
    "container",
    "Give the container a health check (the spec's healthcheck, --health-cmd) or add a "
    "HEALTHCHECK to the image, so failures are detected at run time.",
    cis="5.26",
)
def healthcheck(spec, image_config):
    # The spec's own check wins over the image's (["NONE"] turns the image's off), as at run time.
    own = spec.get("healthcheck")
    if isinstance(own, dict) and own.get("test"):
        return "health check turned off" if own["test"] == ["NONE"] else None
    health = (image_config or {}).get("Healthcheck") or {}
    test = health.get("Test") if isinstance(health, dict) else None
    if not test or test == ["NONE"]:
        return "no health check"
    return None
