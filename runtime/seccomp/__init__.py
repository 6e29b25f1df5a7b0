"""seccomp for containers: Docker's default allow-list compiled to BPF in pure Python, and loaded.

program = runtime.seccomp.build_filter(spec.effective_capabilities())   # cached, bytes
runtime.linux.prctl(runtime.linux.PR_SET_NO_NEW_PRIVS, 1)
runtime.seccomp.install(program)          # in the container's process, right before execve
"""

from __future__ import annotations

import functools
import os

from runtime.seccomp import bpf, emulate
from runtime.seccomp.compiler import compile_program, resolve
from runtime.seccomp.errors import SeccompError
from runtime.seccomp.loader import install, seccomp_mode
from runtime.seccomp.profile import DEFAULT_ACTION, DEFAULT_RULES, UNKNOWN_ACTION
from runtime.spec import ALL_CAPABILITIES, normalize_capability

__all__ = [
    "SeccompError",
    "build_filter",
    "install",
    "apply",
    "verdict",
    "syscall_table",
    "seccomp_mode",
]

_ARCHES = {"x86_64": bpf.AUDIT_ARCH_X86_64}


def syscall_table(arch: str | None = None) -> dict[str, int]:
    """Syscall name -> number for `arch` (default: this machine); SeccompError if unsupported."""
    arch = arch or os.uname().machine
    if arch != "x86_64":
        raise SeccompError(
            f"seccomp: no syscall table for architecture {arch!r}; Berth's filter supports x86_64 only"
        )
    from runtime.seccomp.table_x86_64 import SYSCALLS

    return SYSCALLS


def _capability_set(capabilities) -> frozenset[str]:
    names = {normalize_capability(cap) for cap in capabilities}
    return frozenset(ALL_CAPABILITIES) if "ALL" in names else frozenset(names)


def build_filter(capabilities, arch: str | None = None) -> bytes:
    """The default profile's BPF program (sock_filter bytes) for a container with `capabilities`.

    Capabilities are spelled as in ContainerSpec ("SYS_ADMIN", "CAP_SYS_ADMIN" or "sys_admin";
    "ALL" for all). Programs are cached per capability set: building is paid once per set.
    """
    return _build_listed(tuple(capabilities), arch or os.uname().machine)


@functools.lru_cache(maxsize=256)
def _build_listed(capabilities: tuple[str, ...], arch: str) -> bytes:
    # The same list in another spelling or order maps to the same program below.
    return _build(_capability_set(capabilities), arch)


@functools.lru_cache(maxsize=64)
def _build(capabilities: frozenset[str], arch: str) -> bytes:
    table = syscall_table(arch)
    decisions = resolve(DEFAULT_RULES, capabilities, arch, table, DEFAULT_ACTION)
    program = compile_program(
        decisions,
        audit_arch=_ARCHES[arch],
        highest=max(table.values()),
        default=DEFAULT_ACTION,
        unknown=UNKNOWN_ACTION,
    )
    return bpf.encode(program)


def apply(capabilities, tsync: bool = False) -> None:
    """Set no_new_privs and install the default filter for `capabilities` in this process."""
    from runtime.linux import PR_SET_NO_NEW_PRIVS, prctl

    program = build_filter(capabilities)
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    install(program, tsync=tsync)


def verdict(capabilities, syscall: str | int, args=()) -> str:
    """What the default filter answers for one call, e.g. verdict(caps, "mount") -> "errno 1"."""
    if isinstance(syscall, str):
        table = syscall_table()
        if syscall not in table:
            raise SeccompError(f"seccomp: unknown syscall {syscall!r}")
        syscall = table[syscall]
    program = build_filter(capabilities)
    return emulate.describe(emulate.run(program, emulate.seccomp_data(syscall, args=args)))
