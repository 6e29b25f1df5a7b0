"""Load a BPF program into the calling process with seccomp(2)."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os

from runtime.seccomp import bpf
from runtime.seccomp.errors import SeccompError

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.restype = ctypes.c_int

SYS_SECCOMP_X86_64 = 317
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(program: bytes, tsync: bool = False) -> None:
    """Attach `program` to this thread (all threads with tsync); irreversible for the process.

    The kernel demands no_new_privs (prctl PR_SET_NO_NEW_PRIVS) first unless the caller holds
    CAP_SYS_ADMIN; every later execve keeps the filter.
    """
    if not program or len(program) % 8 or len(program) // 8 > bpf.MAX_INSNS:
        raise SeccompError(
            f"seccomp: a filter is 1..{bpf.MAX_INSNS} instructions of 8 bytes, got {len(program)} bytes"
        )
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.addressof(buffer))
    flags = SECCOMP_FILTER_FLAG_TSYNC if tsync else 0
    result = _libc.syscall(
        ctypes.c_long(SYS_SECCOMP_X86_64),
        ctypes.c_ulong(SECCOMP_SET_MODE_FILTER),
        ctypes.c_ulong(flags),
        ctypes.byref(fprog),
    )
    if result == 0:
        return
    err = ctypes.get_errno()
    if result > 0:
        raise SeccompError(f"seccomp: thread {result} could not be synchronised (tsync)")
    if err == errno.ENOSYS and not tsync:
        # Kernels before 3.17 have no seccomp(2); prctl takes the same program.
        if _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) == 0:
            return
        err = ctypes.get_errno()
    raise SeccompError(_explain(err)) from OSError(err, os.strerror(err))


def _explain(err: int) -> str:
    if err == errno.EACCES:
        return "seccomp: set no_new_privs first (PR_SET_NO_NEW_PRIVS) or hold CAP_SYS_ADMIN"
    if err == errno.EINVAL:
        return "seccomp: the kernel rejected the filter program or a flag (EINVAL)"
    if err == errno.ENOMEM:
        return "seccomp: too many filters stacked on this process (ENOMEM)"
    return f"seccomp: {os.strerror(err)}"


def seccomp_mode(pid: int | str = "self") -> int:
    """The Seccomp field of /proc/<pid>/status: 0 off, 1 strict, 2 filter."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Seccomp:"):
                return int(line.split()[1])
    raise SeccompError("seccomp: this kernel does not report a Seccomp mode")
