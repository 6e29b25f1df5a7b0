"""The built-in roles, created by a data migration. No Django imports."""

_CONTAINER_LIFECYCLE = [
    "container.view",
    "container.change",
    "container.delete",
    "container.start",
    "container.stop",
    "container.restart",
    "container.kill",
    "container.pause",
    "container.unpause",
    "container.logs",
    "container.stats",
    "container.top",
    "container.exec",
    "container.attach",
]
_OWN_TOKENS = ["token.view", "token.create", "token.delete"]

DEFAULT_ROLES = {
    "admin": {
        "description": "Everything, incl. role management, hosts, dangerous options and escalation.",
        "permissions": ["*"],
        "bind_paths": ["/"],
        "default_limits": {},
    },
    "operator": {
        "description": "Lifecycle, logs and exec on every team's containers; no dangerous options.",
        "permissions": _CONTAINER_LIFECYCLE
        + [
            "container.migrate",
            "container.recreate",
            "compliance.view",
            "image.view",
            "image.pull",
            "network.view",
            "volume.view",
            "host.view",
            "team.view",
            "user.view",
            "operation.view",
        ]
        + _OWN_TOKENS,
        "bind_paths": [],
        "default_limits": {},
    },
    "developer": {
        "description": "Create and manage the containers, networks and volumes of their own teams.",
        "permissions": ["container.create", "container.recreate"]
        + _CONTAINER_LIFECYCLE
        + [
            "compliance.view",
            "image.view",
            "image.import",
            "image.tag",
            "image.pull",
            "image.build",
            "network.view",
            "network.create",
            "network.delete",
            "volume.view",
            "volume.create",
            "volume.delete",
            "host.view",
            "team.view",
            "operation.view",
        ]
        + _OWN_TOKENS,
        "bind_paths": [],
        # 256 MiB, one CPU, 512 processes when the request sets no limit.
        "default_limits": {
            "memory": 268435456,
            "cpu_quota": 100000,
            "cpu_period": 100000,
            "pids": 512,
        },
    },
    "viewer": {
        "description": "Read only.",
        "permissions": [
            "container.view",
            "container.logs",
            "container.stats",
            "container.top",
            "compliance.view",
            "image.view",
            "network.view",
            "volume.view",
            "host.view",
            "team.view",
            "operation.view",
        ]
        + _OWN_TOKENS,
        "bind_paths": [],
        "default_limits": {},
    },
    "auditor": {
        "description": "Reads the audit log.",
        "permissions": ["audit.read"] + _OWN_TOKENS,
        "bind_paths": [],
        "default_limits": {},
    },
}

# Limit maxima of the built-in roles (containers/maxima.py keys); roles not named: none.
# A developer may ask for up to 8 GiB, 2 CPUs, 4096 processes and 32 published ports.
DEFAULT_MAX_LIMITS = {
    "developer": {
        "memory": 8 * 1024**3,
        "memory_swap": 16 * 1024**3,
        "cpus": 2000,
        "pids": 4096,
        "ports": 32,
    },
}
