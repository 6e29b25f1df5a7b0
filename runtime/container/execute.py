"""exec: run another program inside a running container's namespaces and cgroup.

A forked helper makes itself non-dumpable (CVE-2019-5736: nothing in the container may
ptrace or open a host process through /proc), joins the cgroup and namespaces of the
container's init, and forks the program into the container's PID namespace; it relays the
program's exit code.
"""

from __future__ import annotations

import fcntl
import os
import select
import termios
import traceback

from runtime import linux
from runtime.container import hardening, plan
from runtime.container.init import find_executable
from runtime.container.rootfs import TIOCGPTN, TIOCSPTLCK
from runtime.container.users import resolve_user
from runtime.errors import BerthError

# Joined in this order; the mount namespace last, as it changes the root directory.
_NS_ORDER = (
    ("user", linux.CLONE_NEWUSER),  # first: the others may be owned by it
    ("cgroup", linux.CLONE_NEWCGROUP),
    ("ipc", linux.CLONE_NEWIPC),
    ("uts", linux.CLONE_NEWUTS),
    ("net", linux.CLONE_NEWNET),
    ("pid", linux.CLONE_NEWPID),
    ("mnt", linux.CLONE_NEWNS),
)


def _exec_plan(rt, rec: dict, argv, env, user, workdir) -> dict:
    spec = rt.spec_of(rec)
    image_config = rec.get("image_config") or {}
    base = plan.environment(spec, image_config, rec["hostname"])
    merged = dict(item.split("=", 1) for item in base)
    for item in env:
        key, sep, value = item.partition("=")
        if sep:
            merged[key] = value
    cfg = image_config.get("config") or {}
    return {
        "argv": list(argv),
        "env": [f"{k}={v}" for k, v in merged.items()],
        "user": user or spec.user or cfg.get("User") or None,
        "workdir": workdir or spec.working_dir or cfg.get("WorkingDir") or "/",
        "caps": hardening.container_caps(spec.effective_capabilities),
        "no_new_privs": spec.no_new_privileges and not spec.privileged,
        "last_cap": hardening.last_cap(),
        "procs_files": rt.cgroups.procs_files(rec["id"]),
        "seccomp": plan.seccomp_program(spec),
    }


def _open_namespaces(pid: int) -> list[tuple[int, int]]:
    fds = []
    for kind, flag in _NS_ORDER:
        mine, theirs = (
            os.stat(f"/proc/self/ns/{kind}").st_ino,
            os.stat(f"/proc/{pid}/ns/{kind}").st_ino,
        )
        if mine != theirs:
            fds.append((os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC), flag))
    return fds


def _program(p: dict, stdio: list[int], tty: bool) -> None:
    """In the container: stdio, user, directory, privileges, exec."""
    code = 126
    try:
        if tty:
            os.setsid()
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        if tty:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        uid, gid, groups, home = resolve_user(p["user"])
        env = p["env"] + (
            [f"HOME={home}"] if not any(e.startswith("HOME=") for e in p["env"]) else []
        )
        os.chdir(p["workdir"])
        path = next((e[5:] for e in env if e.startswith("PATH=")), plan.DEFAULT_PATH[5:])
        try:
            exe = find_executable(p["argv"][0], path)
        except Exception as err:  # _ExecError carries Docker's message and exit code
            os.write(2, f"berth: {err}\n".encode())
            os._exit(getattr(err, "code", 127))
        hardening.drop_privileges(
            uid, gid, groups, p["caps"], p["no_new_privs"], p["last_cap"], p["seccomp"]
        )
        hardening.close_inherited_fds()
        os.execve(exe, p["argv"], dict(e.split("=", 1) for e in env))
    except BerthError as err:
        os.write(2, f"berth: {err}\n".encode())
    except BaseException:
        os.write(2, f"berth: exec failed: {traceback.format_exc()}\n".encode())
    os._exit(code)


def spawn(
    rt, rec: dict, pid: int, argv, stdio: list[int], env=(), user=None, workdir=None, tty=False
) -> int:
    """Fork the helper that execs `argv` in the container; returns the helper's pid."""
    p = _exec_plan(rt, rec, argv, env, user, workdir)
    ns_fds = _open_namespaces(pid)
    helper = os.fork()
    if helper == 0:
        code = 126
        try:
            linux.prctl(linux.PR_SET_DUMPABLE, 0)
            for path in p["procs_files"]:
                with open(path, "w") as f:
                    f.write("0")
            for fd, flag in ns_fds:
                linux.setns(fd, flag)
            child = os.fork()
            if child == 0:
                _program(p, stdio, tty)
            for fd in set(stdio):
                os.close(fd)
            # From here the helper only waits. It must hold none of its parent's descriptors:
            # a copy of the write end of the program's stdin pipe kept open here would never
            # let the program read end-of-file (docker exec -i with input piped in).
            os.closerange(3, os.sysconf("SC_OPEN_MAX"))
            _, status = os.waitpid(child, 0)
            code = os.waitstatus_to_exitcode(status)
            code = 128 - code if code < 0 else code
        except BaseException:
            os.write(2, f"berth: exec failed: {traceback.format_exc()}\n".encode())
        os._exit(code)
    for fd, _ in ns_fds:
        os.close(fd)
    return helper


def open_pty_in(pid: int) -> tuple[int, int]:
    """A pty pair from the container's own devpts, so `tty` inside names /dev/pts/N."""
    import stat
    import struct

    base = f"/proc/{pid}/root/dev/pts"
    master = os.open(f"{base}/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_NOFOLLOW | os.O_CLOEXEC)
    st = os.fstat(master)
    if not stat.S_ISCHR(st.st_mode) or os.major(st.st_rdev) != 5:
        os.close(master)
        raise BerthError("the container's /dev/pts/ptmx is not the pty multiplexer")
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0" * 4))[0]
    slave = os.open(f"{base}/{number}", os.O_RDWR | os.O_NOCTTY | os.O_NOFOLLOW | os.O_CLOEXEC)
    return master, slave


def run(
    rt, rec: dict, pid: int, argv, env=(), user=None, workdir=None, tty=False
) -> tuple[int, bytes]:
    """exec and collect the combined output; returns (exit code, output)."""
    if not argv:
        from runtime.errors import InvalidSpec

        raise InvalidSpec("exec needs a command")
    if tty:
        read_fd, write_fd = open_pty_in(pid)
        stdio = [write_fd] * 3
    else:
        read_fd, write_fd = os.pipe()
        devnull = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        stdio = [devnull, write_fd, write_fd]
    try:
        helper = spawn(rt, rec, pid, argv, stdio, env=env, user=user, workdir=workdir, tty=tty)
    finally:
        for fd in set(stdio):
            os.close(fd)
    chunks = []
    while True:
        select.select([read_fd], [], [])
        try:
            data = os.read(read_fd, 65536)
        except OSError:  # EIO: the pty's last writer is gone
            break
        if not data:
            break
        chunks.append(data)
    os.close(read_fd)
    _, status = os.waitpid(helper, 0)
    code = os.waitstatus_to_exitcode(status)
    return (128 - code if code < 0 else code), b"".join(chunks)
