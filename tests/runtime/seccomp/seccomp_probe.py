"""Run a function in a forked child under a seccomp filter and bring its result back.

The child reports through a pipe as JSON and always leaves with os._exit, so it never returns
into pytest; the parent reaps it, so no process outlives a test.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import signal

import runtime.seccomp as seccomp
from runtime.linux import PR_SET_NO_NEW_PRIVS, prctl

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
libc.syscall.restype = ctypes.c_long

# x86_64 numbers used by the probes.
NR = {
    "getpid": 39,
    "kcmp": 312,
    "keyctl": 250,
    "unshare": 272,
    "mount": 165,
    "clone3": 435,
    "personality": 135,
    "socket": 41,
    "chroot": 161,
}


def raw(nr: int, *args: int) -> int | str:
    """syscall(nr, args...) -> its return value, or the errno name when it fails."""
    result = libc.syscall(ctypes.c_long(nr), *(ctypes.c_ulong(a & (2**64 - 1)) for a in args))
    if result == -1:
        import errno

        return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
    return result


def run_child(body, capabilities=None, *, no_new_privs: bool = True, tsync: bool = False):
    """Fork; the child installs the filter for `capabilities` (None: no filter) and runs body().

    Returns (decoded result or None, wait status). The result is whatever JSON body() returned.
    """
    program = seccomp.build_filter(capabilities) if capabilities is not None else None
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(read_end)
            if no_new_privs:
                prctl(PR_SET_NO_NEW_PRIVS, 1)
            if program is not None:
                seccomp.install(program, tsync=tsync)
            payload = {"ok": body()}
        except BaseException as exc:  # report every failure to the parent
            payload = {"error": f"{type(exc).__name__}: {exc}"}
            code = 1
        try:
            os.write(write_end, json.dumps(payload).encode())
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    try:
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
    finally:
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
    if not chunks:
        return None, status
    payload = json.loads(b"".join(chunks))
    if "error" in payload:
        raise AssertionError(f"child failed: {payload['error']}")
    return payload["ok"], status


def killed_by(status: int) -> str | None:
    """The signal name that ended the child, if any."""
    return signal.Signals(os.WTERMSIG(status)).name if os.WIFSIGNALED(status) else None
