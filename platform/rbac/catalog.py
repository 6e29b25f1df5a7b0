"""Every permission Berth knows, declared once: `<resource>.<verb>`. No Django imports.

Custom verbs (start, stop, exec, attach, ...) are declared here and nowhere else; the REST
viewsets, the HTML views and the host agent all name these codes.
"""

RESOURCES: dict[str, tuple[str, ...]] = {
    "container": (
        "view",
        "create",
        "change",
        "delete",
        "start",
        "stop",
        "restart",
        "kill",
        "pause",
        "unpause",
        "migrate",
        # recreate: replace a container by a new one with the same spec (rolling updates).
        "recreate",
        "logs",
        "stats",
        "top",
        "exec",
        "attach",
        # Dangerous options: each one is root on the host in the wrong hands.
        "privileged",
        "bind_mount",
        "host_namespaces",
        "cap_add",
        "devices",
        "unconfined",
        "low_ports",
        "exec_root",
    ),
    "image": ("view", "import", "tag", "delete", "pull", "push", "build", "save", "prune"),
    # Registries and their stored credentials: managed by admins, their use a permission.
    "registry": ("view", "manage", "use"),
    "network": ("view", "create", "delete"),
    "volume": ("view", "create", "delete"),
    # host.join is what a join token does: no role grants it, the one-time token is the credential.
    "host": ("view", "create", "change", "delete", "join"),
    "user": ("view", "create", "change", "delete"),
    # team.quota: set a team's quotas (a team's own admins must not raise them).
    "team": ("view", "create", "change", "delete", "quota"),
    "role": ("view", "manage"),
    "rbac": ("escalate",),
    "audit": ("read",),
    "operation": ("view",),
    "token": ("view", "create", "delete"),
    # Backups of the whole site (issue 12): admins by default.
    "backup": ("view", "run", "restore"),
    # Compliance findings and their exceptions (issue 13).
    "compliance": ("view", "run", "except"),
    # Prometheus metrics (issue 15): a scraper's token holds metrics.read.
    "metrics": ("read",),
    # Directory (LDAP/OIDC) group mappings to teams and roles (issue 15).
    "directory": ("view", "manage"),
}

ALL_PERMISSIONS: tuple[str, ...] = tuple(
    f"{res}.{verb}" for res, verbs in RESOURCES.items() for verb in verbs
)

DANGEROUS_PERMISSIONS: frozenset[str] = frozenset(
    {
        "container.privileged",
        "container.bind_mount",
        "container.host_namespaces",
        "container.cap_add",
        "container.devices",
        "container.unconfined",
        "container.low_ports",
        "container.exec_root",
        "rbac.escalate",
    }
)

# Actions that only read: allowed with a read-only API token.
READ_VERBS: frozenset[str] = frozenset({"view", "logs", "stats", "top", "read"})

WILDCARD = "*"


def split(action: str) -> tuple[str, str]:
    """'container.start' -> ('container', 'start'); refuses codes that are not declared."""
    resource, _, verb = action.partition(".")
    if verb not in RESOURCES.get(resource, ()):
        raise ValueError(f"unknown permission {action!r}")
    return resource, verb


def is_read(action: str) -> bool:
    """Whether the action changes nothing."""
    return split(action)[1] in READ_VERBS


def valid_code(code: str) -> bool:
    """A permission a role may hold: a declared code, `<resource>.*` or `*`."""
    if code == WILDCARD:
        return True
    resource, _, verb = code.partition(".")
    if verb == WILDCARD:
        return resource in RESOURCES
    return verb in RESOURCES.get(resource, ())


def holds(codes, action: str) -> bool:
    """Whether a set of role permissions (wildcards allowed) includes `action`."""
    if WILDCARD in codes or action in codes:
        return True
    return f"{action.partition('.')[0]}.*" in codes


def expand(codes) -> frozenset[str]:
    """The concrete permissions a set of codes with wildcards stands for."""
    return frozenset(code for code in ALL_PERMISSIONS if holds(codes, code))
