"""Privilege drops applied in the child right before exec: user, capabilities, no_new_privs, fds."""

from __future__ import annotations

import os

from runtime import linux
from runtime.spec import ALL_CAPABILITIES

# Capability numbers (linux/capability.h): ALL_CAPABILITIES is kept in kernel order.
CAP_NUMBERS = {name: number for number, name in enumerate(ALL_CAPABILITIES)}


def cap_mask(names) -> int:
    """The 64-bit mask of a list of capability names."""
    mask = 0
    for name in names:
        mask |= 1 << CAP_NUMBERS[name]
    return mask


def host_bounding() -> int:
    """This process's bounding set: a container can never hold more than its creator."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16)
    return (1 << 64) - 1


def container_caps(names) -> int:
    """The mask the container gets: the requested set within what this host allows."""
    return cap_mask(names) & host_bounding()


def last_cap() -> int:
    """The highest capability number this kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return max(CAP_NUMBERS.values())


def drop_privileges(
    uid: int,
    gid: int,
    groups: list[int],
    caps: int,
    no_new_privs: bool,
    top_cap: int,
    seccomp: bytes | None = None,
) -> None:
    """Bounding set, ambient set, no_new_privs, seccomp, then user; root keeps exactly `caps`."""
    for cap in range(top_cap + 1):
        if not caps & (1 << cap):
            linux.prctl(linux.PR_CAPBSET_DROP, cap)
    linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_CLEAR_ALL)
    if no_new_privs:
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    if seccomp:
        # Without no_new_privs the kernel wants CAP_SYS_ADMIN to install a filter: we still
        # hold it here. The filter allows the few calls left before execve.
        from runtime.seccomp import install

        install(seccomp)
    os.setgroups(groups)
    os.setgid(gid)
    # setuid to a non-root uid clears the permitted and effective sets, as Docker does.
    os.setuid(uid)
    if uid == 0:
        linux.capset(caps, caps, 0)


def close_inherited_fds(cloexec=()) -> None:
    """Close every descriptor above 2 so no host file leaks in (CVE-2024-21626).

    `cloexec` descriptors (close-on-exec) stay open until the exec itself closes them:
    their reader sees EOF exactly when the new program has replaced this one.
    """
    low = 3
    for fd in sorted(cloexec):
        os.closerange(low, fd)
        os.set_inheritable(fd, False)
        low = fd + 1
    os.closerange(low, 1 << 20)
