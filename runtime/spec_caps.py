"""Linux capabilities: Docker's default set, the kernel's full list, and name normalisation."""

from __future__ import annotations

from runtime.errors import InvalidSpec

# Docker's default capability set (moby daemon/pkg/oci/defaults.go).
DEFAULT_CAPABILITIES = (
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
)
# In the kernel's numbering order (linux/capability.h): index == capability number.
ALL_CAPABILITIES = (
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
)


def normalize_capability(name: str) -> str:
    """'sys_admin', 'CAP_SYS_ADMIN' and 'SYS_ADMIN' are one capability; 'all' is ALL."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidSpec(f"invalid capability {name!r}")
    cap = name.strip().upper()
    if cap.startswith("CAP_"):
        cap = cap[4:]
    if cap != "ALL" and cap not in ALL_CAPABILITIES:
        raise InvalidSpec(f"unknown capability {name!r}")
    return cap
