"""The container's first process before exec: runs in the forked child, never returns.

It enters its namespaces, waits while the parent wires the network, builds the root
filesystem, waits until its parent has moved it into its cgroup (so limits hold from the
first instruction; the move waits for an RCU grace period, so it runs beside the set-up
instead of before it), makes its cgroup namespace, waits for `start` on the exec FIFO,
drops privileges and execs the program. Errors go back to the parent
as one JSON line on the message pipe.
"""

from __future__ import annotations

import contextlib
import json
import os
import traceback

from runtime import linux
from runtime.container import hardening, rootfs
from runtime.container.users import resolve_user
from runtime.errors import BerthError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class _ExecError(Exception):
    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def _send(fd: int, **msg) -> None:
    os.write(fd, (json.dumps(msg) + "\n").encode())


def find_executable(name: str, path: str) -> str:
    """Resolve argv[0] like execvp, with Docker's messages and exit codes (127 / 126)."""
    candidates = [name] if "/" in name else [os.path.join(d or ".", name) for d in path.split(":")]
    denied = None
    for candidate in candidates:
        if not os.path.exists(candidate):
            continue
        if os.path.isdir(candidate) or not os.access(candidate, os.X_OK):
            denied = candidate
            continue
        return candidate
    if denied:
        raise _ExecError(f'exec: "{name}": permission denied', 126)
    if "/" in name:
        raise _ExecError(f'exec: "{name}": stat {name}: no such file or directory', 127)
    raise _ExecError(f'exec: "{name}": executable file not found in $PATH', 127)


def _stdio(plan: dict) -> None:
    os.setsid()
    # With a TTY these are /dev/null until the pty exists (made inside the container's devpts).
    for target, fd in enumerate(plan["stdio"]):
        os.dup2(fd, target)


def _namespaces(plan: dict) -> None:
    for path in plan["procs_files"]:
        with open(path, "w") as f:
            f.write("0")
    for fd, flag in plan["join_fds"]:
        linux.setns(fd, flag)
    flags = plan["unshare"]
    if plan.get("cgroup_r") is not None:
        flags &= ~linux.CLONE_NEWCGROUP  # made once in the cgroup (_joined): it is its root
    linux.unshare(flags)
    if plan.get("loopback"):
        _loopback_up()


def _loopback_up() -> None:
    """Bring `lo` of the new network namespace up (`--network none`: no caller step waits)."""
    import fcntl
    import socket
    import struct

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        req = fcntl.ioctl(sock, siocgifflags, struct.pack("16sH22x", b"lo", 0))
        flags = struct.unpack("16sH22x", req)[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH22x", b"lo", flags | iff_up))


def _joined(plan: dict) -> None:
    """Wait until the parent has moved this process into its cgroup, then make the cgroup
    namespace (rooted there, as it would be had the process joined before unsharing)."""
    fd = plan.get("cgroup_r")
    if fd is None:
        return
    got = os.read(fd, 1)
    os.close(fd)
    if got != b"1":
        raise _ExecError("cannot move the container into its cgroup (its parent failed to)", 125)
    if plan["unshare"] & linux.CLONE_NEWCGROUP:
        linux.unshare(linux.CLONE_NEWCGROUP)


def _env_path(env: list[str]) -> str:
    for item in env:
        if item.startswith("PATH="):
            return item[5:]
    return DEFAULT_PATH


def _wait_for_start(fifo_fd: int) -> int:
    # The O_PATH descriptor was taken before pivot_root; reopening it for writing blocks
    # until `start` opens the FIFO for reading, exactly like runc's exec.fifo.
    # The write end stays open until exec closes it: the reader's EOF then says "exec'd".
    fd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
    os.write(fd, b"0")
    return fd


def child_main(plan: dict) -> None:
    """Run the container's setup in the forked child, then exec; exits on any error."""
    msg = plan["msg_fd"]
    code = 125
    try:
        if plan.get("cgroup_w") is not None:
            os.close(plan["cgroup_w"])  # the parent's end: its exit then reads as EOF here
        _stdio(plan)
        _namespaces(plan)
        _send(msg, ns=True)
        if plan.get("loopback"):
            os.close(plan["go_fd"])  # nothing to wait for: the network is this process's own
        elif os.read(plan["go_fd"], 1) != b"1":
            os._exit(125)
        if plan["hostname"] and plan["unshare"] & linux.CLONE_NEWUTS:
            linux.sethostname(plan["hostname"])
        fifo_fd = os.open(plan["fifo"], os.O_PATH | os.O_CLOEXEC) if plan["fifo"] else None
        rootfs.setup_rootfs(plan)
        uid, gid, groups, home = resolve_user(plan["user"])
        env = list(plan["env"])
        if not any(e.startswith("HOME=") for e in env):
            env.append(f"HOME={home}")
        workdir = plan["workdir"] or "/"
        os.makedirs(workdir, exist_ok=True)
        os.chdir(workdir)
        argv = plan["argv"]
        if not argv:
            raise _ExecError("no command specified", 125)
        exe = find_executable(argv[0], _env_path(env))
        _joined(plan)
        _send(msg, ready=True)
        keep = [msg]
        if fifo_fd is not None:
            keep.append(_wait_for_start(fifo_fd))
        code = 126
        hardening.drop_privileges(
            uid, gid, groups, plan["caps"], plan["no_new_privs"], plan["last_cap"], plan["seccomp"]
        )
        if plan.get("init"):
            hardening.close_inherited_fds()
            _run_init(exe, argv, env)
        hardening.close_inherited_fds(cloexec=keep)
        os.execve(exe, argv, dict(e.split("=", 1) for e in env))
    except _ExecError as err:
        _report(msg, str(err), err.code)
    except BerthError as err:
        _report(msg, str(err), code, type(err).__name__)
    except OSError as err:
        _report(msg, f"{err.strerror}: {err.filename or ''}".rstrip(": "), code)
    except BaseException:
        _report(msg, traceback.format_exc(), code)
    os._exit(code)


def _run_init(exe: str, argv: list[str], env: list[str]) -> None:
    """A minimal PID 1: fork the program, forward signals to it, reap every zombie."""
    import signal

    child = os.fork()
    if child == 0:
        os.execve(exe, argv, dict(e.split("=", 1) for e in env))
    forward = [
        s for s in signal.Signals if s not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD)
    ]
    for sig in forward:
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, lambda n, _f: os.kill(child, n))
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(0)
        except InterruptedError:
            continue
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            os._exit(128 - code if code < 0 else code)


def _report(msg: int, text: str, code: int, kind: str = "KernelError") -> None:
    with contextlib.suppress(OSError):
        _send(msg, error=text, code=code, kind=kind)
    with contextlib.suppress(OSError):
        os.write(2, f"berth: {text}\n".encode())
    os._exit(code)
