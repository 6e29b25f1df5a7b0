"""Start a container's process tree: caller -> (setsid) -> shim-to-be -> container init.

The caller double-forks so the shim is detached from it (killing the caller stops no
container). The second fork makes the PID namespace, forks the container's init and then
execs the small shim program, which is thereby the init's parent. A message pipe carries
the init's host pid and progress back to the caller, which wires the network once the
namespaces exist and then releases the child on a second pipe.

While the children fork, the caller makes what they need only later (a create's cgroups, a
`--network none` container's /etc files); a third pipe tells them it is done (or, closed
empty, that it failed: they exit before the init exists). The detaching child then moves
the init into its cgroup (its pid from the shim-to-be on a fourth pipe) and exits, so the
shim-to-be execs the shim without waiting for that move.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import time
from pathlib import Path

from runtime import linux
from runtime.container import init, plan
from runtime.container.fsutil import proc_start_time, socket_path, write_json
from runtime.container.paths import ContainerPaths
from runtime.container.shimexec import (  # noqa: F401 (restore.py and tests reach them here)
    POST_EXIT_CODE,
    PROJECT,
    RESPAWN_CODE,
    exec_shim,
    needs_post_exit,
    shim_args,
)
from runtime.errors import (
    BerthError,
    CommandNotExecutable,
    CommandNotFound,
    InvalidSpec,
    KernelError,
)

HANDSHAKE_TIMEOUT = 30.0
_ERRORS = {127: CommandNotFound, 126: CommandNotExecutable}


def default_hosts(hostname: str) -> str:
    """A hosts file for a container with loopback only."""
    return (
        f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
    )


def etc_files(rt, rec: dict, paths: ContainerPaths, defaults: bool = True) -> dict[str, str]:
    """Create the run dir's hosts, resolv.conf and hostname; the network step may rewrite them.

    defaults=False: hosts and resolv.conf are left to the caller (launch writes a
    `--network none` container's whole before the fork: isolated_network)."""
    paths.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = {"hostname": paths.etc_file("hostname")}
    files["hostname"].write_text(rec["hostname"] + "\n")
    mode = rec["spec"]["network"]["mode"]
    if mode.startswith("container:"):
        other = ContainerPaths(rt.config, rec["network_container"])
        files["hosts"], files["resolv.conf"] = (
            other.etc_file("hosts"),
            other.etc_file("resolv.conf"),
        )
    else:
        files["hosts"] = paths.etc_file("hosts")
        files["resolv.conf"] = paths.etc_file("resolv.conf")
        if defaults:
            files["hosts"].write_text(default_hosts(rec["hostname"]))
            files["resolv.conf"].write_text("")
    return {name: str(path) for name, path in files.items()}


def make_stdio(spec: dict) -> dict:
    """Pipes that outlive each container process (the shim keeps both ends); for a TTY, a
    socket pair on which the child hands the shim the master of a pty it makes inside the
    container's own devpts (so `tty` in there names /dev/pts/0, as in Docker)."""
    fds = {}
    if spec["tty"]:
        shim_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        fds["pty_sock"], fds["pty_peer"] = shim_end.detach(), child_end.detach()
    else:
        fds["out_r"], fds["out_w"] = os.pipe()
        fds["err_r"], fds["err_w"] = os.pipe()
    if spec["stdin_open"] and not spec["tty"]:
        fds["in_r"], fds["in_w"] = os.pipe()
    return fds


def child_stdio(fds: dict) -> list[int]:
    """The three descriptors the container's init starts with as 0, 1 and 2."""
    if "pty_peer" in fds:
        null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        return [null] * 3  # replaced by the pty's slave once the child has made it
    stdin = fds.get("in_r")
    if stdin is None:
        stdin = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    return [stdin, fds["out_w"], fds["err_w"]]


def listen_socket(path: Path) -> int:
    """The attach socket, bound before the shim exists so early clients simply queue."""
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with socket_path(path) as address:
        sock.bind(address)
    os.chmod(path, 0o600)
    sock.listen(16)
    return sock.detach()


def winsize_socket(path: Path) -> int:
    """The datagram socket on which the shim takes window sizes for a TTY container's pty."""
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    with socket_path(path) as address:
        sock.bind(address)
    os.chmod(path, 0o600)
    return sock.detach()


def _namespace_fds(rt, rec: dict) -> tuple[list[tuple[int, int]], int | None]:
    """Descriptors of other containers' namespaces to join (opened now, before any fork)."""
    spec = rec["spec"]
    joins, pid_fd = [], None
    wanted = [
        (kind, value)
        for kind, value in spec["namespaces"].items()
        if value.startswith("container:")
    ]
    if spec["network"]["mode"].startswith("container:"):
        wanted.append(("net", spec["network"]["mode"]))
    for kind, value in wanted:
        pid = rt.running_pid(value.partition(":")[2])
        flag = linux.NAMESPACE_FLAGS["mnt" if kind == "mnt" else kind]
        fd = os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)
        if kind == "pid":
            pid_fd = fd
        else:
            joins.append((fd, flag))
    return joins, pid_fd


def reset_pid_namespace() -> None:
    """Make this process's future children live in its own PID namespace again."""
    # A process that already made a PID namespace forks into it; point its children back at
    # its own namespace first (needed when the shim respawns a container in its process).
    fd = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        linux.setns(fd, linux.CLONE_NEWPID)
    finally:
        os.close(fd)


def _fork_init(child_plan: dict, pid_mode: str, pid_fd: int | None, fork=os.fork) -> int:
    reset_pid_namespace()
    if child_plan.get("userns"):
        from runtime.container import userns  # local: only user-namespaced containers

        return userns.fork_init(child_plan, init.child_main, pid_fd)
    if pid_fd is not None:
        linux.setns(pid_fd, linux.CLONE_NEWPID)
    elif pid_mode == "private":
        linux.unshare(linux.CLONE_NEWPID)
    pid = fork()
    if pid == 0:
        init.child_main(child_plan)  # never returns
    return pid


def _send(fd: int, **msg) -> None:
    os.write(fd, (json.dumps(msg) + "\n").encode())


def defer_cgroup_join(child_plan: dict) -> list[str]:
    """Take the cgroup move out of the init: its parent makes it (join_cgroup) while the init
    sets up, and the init waits for it before it makes its cgroup namespace and execs.

    A move into a cgroup waits for an RCU grace period (5-20 ms): made first by the init,
    as before, it held up every later step. Returns the procs files to write.
    """
    procs = child_plan["procs_files"]
    child_plan["procs_files"] = []
    child_plan["cgroup_r"], child_plan["cgroup_w"] = os.pipe()
    return procs


def own_procs_file(rt, cid: str, procs: list[str]) -> str | None:
    """This process's own cgroup.procs in the hierarchy of the container's first group.

    Writing "0" there moves nothing (the writer is in that group already) but, as every
    cgroup move does, it starts the RCU grace period a move waits for; made by the launch's
    detaching child at the fork, the init's real move (join_cgroup) a few milliseconds
    later finds the period under way or passed instead of starting one of its own.
    """
    tail = f"/{rt.cgroups.prefix}/{cid}/cgroup.procs"
    if not procs or not procs[0].endswith(tail):
        return None
    tree = procs[0][: -len(tail)]
    name = os.path.basename(tree)
    v2 = os.path.exists(f"{tree}/cgroup.controllers")
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if (not controllers and v2) or (
            controllers and set(controllers.removeprefix("name=").split(",")) == {*name.split(",")}
        ):
            return f"{tree}{path.rstrip('/')}/cgroup.procs"
    return None


def _keep_only(keep: set[int]) -> None:
    """Close every descriptor above 2 except `keep` (the detaching child holds no more)."""
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)


def _warm_cgroup_move(own: str | None) -> None:
    """In the detaching child, once it has forked the shim-to-be: see own_procs_file."""
    if own is None:
        return
    with contextlib.suppress(OSError):
        fd = os.open(own, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)


def _move_init(child_plan: dict, procs: list[str], pid_r: int, msg_w: int) -> None:
    """In the detaching child, after its warm-up: move the init (its pid comes from the
    shim-to-be) into its cgroup. Made here, right behind the warm-up, the move finds the
    grace period passed; the shim-to-be meanwhile execs the shim without waiting for it."""
    # One read (the pid comes in one write): the init holds the write end until its exec.
    try:
        data = os.read(pid_r, 32)
    finally:
        os.close(pid_r)
    if not data:  # the shim-to-be failed before the init existed (it reported why)
        return
    try:
        join_cgroup(child_plan, procs, int(data))
    except OSError as err:
        _send(msg_w, error=f"cannot move the container into its cgroup: {err}")


def join_cgroup(child_plan: dict, procs: list[str], pid: int) -> None:
    """Move the init `pid` into its cgroup and tell it so (as host root, from its parent)."""
    try:
        for path in procs:
            with open(path, "w") as f:
                f.write(str(pid))
        os.write(child_plan["cgroup_w"], b"1")
    finally:
        for key in ("cgroup_r", "cgroup_w"):  # the init reads EOF if the move failed
            with contextlib.suppress(OSError):
                os.close(child_plan[key])


class Handshake:
    """The caller's side of the message pipe: collect pids, run the network step, release."""

    def __init__(self, msg_r: int, go_w: int):
        self.msg_r, self.go_w = msg_r, go_w
        self.buf = b""
        self.info: dict = {}

    def next(self, deadline: float) -> dict:
        """The next JSON message from the child (KernelError on timeout or EOF)."""
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.msg_r], [], [], left)[0]:
                raise KernelError("timed out waiting for the container's process to set up")
            chunk = os.read(self.msg_r, 4096)
            if not chunk:
                raise KernelError("the container's process exited during setup")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)

    def run(self, network_step, wait_exec: bool = False, release: bool = True, early=None) -> dict:
        """Collect progress until the child is ready (or, with wait_exec, has exec'd).

        release=False: the child does not wait for the network step (it has none to wait
        for: `--network none`), so nothing is written to it. early(info): called once the
        pids and the network are known, while the child still sets up (the caller's
        bookkeeping then costs no time of its own)."""
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT
        released = not release
        if released:
            self.info["network"] = network_step(None)
        while True:
            msg = self.next(deadline)
            if "error" in msg:
                kind = InvalidSpec if msg.get("kind") == "InvalidSpec" else KernelError
                raise _ERRORS.get(msg.get("code"), kind)(msg["error"])
            self.info.update(msg)
            if not released and "ns" in self.info and "pid" in self.info:
                self.info["network"] = network_step(self.info["pid"])
                os.write(self.go_w, b"1")
                released = True
            if early is not None and released and "pid" in self.info:
                early(self.info)
                early = None
            if msg.get("ready"):
                if wait_exec:
                    self.wait_eof(deadline)
                return self.info

    def wait_eof(self, deadline: float) -> None:
        # Every writer of the pipe closes it on exec (or exit): EOF means the program runs.
        """Wait until every writer closed the pipe (the program has exec'd)."""
        try:
            while True:
                msg = self.next(deadline)
                if "error" in msg:
                    raise _ERRORS.get(msg.get("code"), KernelError)(msg["error"])
        except KernelError as err:
            if "exited during setup" not in str(err):
                raise

    def close(self) -> None:
        """Close both pipe ends held by the caller."""
        for fd in (self.msg_r, self.go_w):
            with contextlib.suppress(OSError):
                os.close(fd)


def network_step(rt, rec: dict, files: dict):
    """The callable that wires the network once the container's netns exists."""

    def step(pid: int) -> dict:
        """Attach the container (init `pid`) to its network; returns the network dict."""
        spec = rt.spec_of(rec)
        exposed = (rec.get("image_config") or {}).get("config", {}).get("ExposedPorts") or {}
        files_paths = {k: Path(v) for k, v in files.items() if k != "hostname"}
        return rt.networks.attach(
            rec["id"], rec["name"], pid, spec.network, rec["hostname"], exposed, files_paths
        )

    return step


def isolated_network(rec: dict, child: dict, files: dict, spec):
    """`--network none` without a step in the caller: the init brings its own `lo` up, so
    it goes on without waiting for the caller. Returns what writes the container's hosts and
    resolv.conf and answers the network dict to record (launch calls it while its children
    fork; the shim-to-be waits for it); None for every other mode (their step runs once the
    netns exists)."""
    if rec["spec"]["network"]["mode"] != "none" or not child["unshare"] & linux.CLONE_NEWNET:
        return None
    from runtime.network.manager import NetworkManager  # no manager instance: no state read

    child["loopback"] = True
    paths = {k: Path(v) for k, v in files.items() if k != "hostname"}
    return lambda: NetworkManager.isolated_files(spec.network, paths)


def _kill_quietly(pid: int | None) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_gone(pid: int | None, timeout: float = 10.0) -> None:
    """Wait until `pid` (not our child) has exited."""
    if not pid:
        return
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)


def _child_plan(
    rt, rec: dict, paths: ContainerPaths, files: dict, stdio: list[int], fifo: bool, spec=None
) -> dict:
    spec = spec if spec is not None else rt.spec_of(rec)
    child = plan.build(
        spec,
        rec.get("image_config") or {},
        rec["lower"],
        paths,
        rec["hostname"],
        procs_files=rt.cgroups.procs_files(rec["id"]),
        etc_files=files,
    )
    plan.ensure_volumes(child["mounts"])
    child["stdio"] = stdio
    child["fifo"] = str(paths.fifo) if fifo else None
    if spec.namespaces.get("user") == "private":
        from runtime.container import userns  # local: only user-namespaced containers

        # Made before ranges were kept in records: the pool's first range, as then.
        first, count = userns.legacy_range(rt.config)
        info = rec.get("userns") or {"first": first, "count": count}
        join_pid = rt.running_pid(info["join"]) if info.get("join") else None
        userns.prepare(
            child,
            info["first"],
            info["count"],
            join_pid=join_pid,
            device_dir=paths.dir / "devices",
            deferred=True,
        )
    return child


def _userns_fds(child: dict) -> list[int]:
    """Descriptors the parent made for a user-namespaced child (closed after the fork)."""
    u = child.get("userns")
    return [fd for fd in (u["user_fd"], *u["layer_fds"]) if fd is not None] if u else []


def _ready(fd: int) -> bool:
    """In a launch's child: wait for the caller's go-ahead (False: the caller failed or died)."""
    try:
        return os.read(fd, 1) == b"1"
    finally:
        os.close(fd)


def _settle_children(shake: Handshake, pid0: int) -> None:
    """After a failed setup: the children read EOF and exit; wait until every one has."""
    with contextlib.suppress(KernelError):
        shake.wait_eof(time.monotonic() + HANDSHAKE_TIMEOUT)
    os.waitpid(pid0, 0)


def launch(rt, rec: dict, start_now: bool, prepared=None, setup=None, spec=None) -> dict:
    """Make the container's process wait before exec (or exec at once with start_now).

    The shim's record is written, and prepared(info) called, while the init still sets up.
    setup(): the caller's own step (a create's cgroups), made while the children fork: the
    shim-to-be waits for it, and for a `--network none` container's files, before it makes
    the init. spec: the record's spec, already parsed by the caller."""
    spec = spec if spec is not None else rt.spec_of(rec)
    paths = ContainerPaths(rt.config, rec["id"])
    files = etc_files(rt, rec, paths, defaults=rec["spec"]["network"]["mode"] != "none")
    paths.stop_flag.unlink(missing_ok=True)
    paths.caller_cleans.unlink(missing_ok=True)
    paths.fifo.unlink(missing_ok=True)
    if not start_now:
        os.mkfifo(paths.fifo, 0o622)
    joins, pid_fd = _namespace_fds(rt, rec)
    fds = make_stdio(rec["spec"])
    stdio = child_stdio(fds)
    listen = listen_socket(paths.attach_socket)
    winsize = winsize_socket(paths.winsize_socket) if rec["spec"]["tty"] else None
    msg_r, msg_w = os.pipe()
    go_r, go_w = os.pipe()
    ready_r, ready_w = os.pipe()  # the caller's go-ahead: one byte each for both children
    pid_r, pid_w = os.pipe()  # the init's pid, from the shim-to-be to the detaching child
    child = _child_plan(rt, rec, paths, files, stdio, fifo=not start_now, spec=spec)
    child["pty_peer"] = fds.get("pty_peer")
    child.update(msg_fd=msg_w, go_fd=go_r, join_fds=joins)
    write_isolated = isolated_network(rec, child, files, spec)
    args = shim_args(rt, rec, paths, fds, listen)
    args["winsize"] = winsize
    pid_mode = rec["spec"]["namespaces"].get("pid", "private")
    owned = _userns_fds(child)
    procs = defer_cgroup_join(child)
    own = own_procs_file(rt, rec["id"], procs)
    pid0 = linux.light_fork()
    if pid0 == 0:
        try:
            os.close(ready_w)
            os.setsid()
            if linux.clone_plain() == 0:  # this child is single-threaded
                os.close(pid_r)
                if not _ready(ready_r):
                    os._exit(0)
                cpid = _fork_init(child, pid_mode, pid_fd, fork=linux.clone_plain)
                me = os.getpid()
                _send(
                    msg_w,
                    pid=cpid,
                    shim=me,
                    shim_start=proc_start_time(me),
                    pid_start=proc_start_time(cpid),
                )
                # Only now, so the pids reach the caller before the init can say "ready".
                os.write(pid_w, str(cpid).encode())  # the detaching child moves it
                for fd in (pid_w, child["cgroup_r"], child["cgroup_w"]):
                    os.close(fd)
                args["pid"] = cpid
                exec_shim(args)
            os.close(pid_w)
            # Nothing else held: the caller's EOF on the message pipe waits for this child.
            _keep_only({ready_r, pid_r, msg_w, child["cgroup_r"], child["cgroup_w"]})
            # After the caller's step: its cgroup mkdirs would wait behind this move.
            if _ready(ready_r):
                _warm_cgroup_move(own)
                _move_init(child, procs, pid_r, msg_w)
        finally:
            os._exit(0)
    for fd in {
        *fds.values(),
        *stdio,
        listen,
        *([winsize] if winsize is not None else []),
        msg_w,
        go_r,
        *(j[0] for j in joins),
        *([pid_fd] if pid_fd else []),
        *owned,
        child["cgroup_r"],
        child["cgroup_w"],
        ready_r,
        pid_r,
        pid_w,
    }:
        os.close(fd)
    shake = Handshake(msg_r, go_w)
    try:
        try:  # while the children fork: nothing of the container runs before it is done
            if setup is not None:
                setup()
            isolated = write_isolated() if write_isolated is not None else None
            os.write(ready_w, b"11")
        finally:
            os.close(ready_w)
    except BaseException:
        _settle_children(shake, pid0)
        shake.close()
        raise
    recorded = []

    def early(info: dict) -> None:
        """The shim's record (and the caller's own step) while the init sets up."""
        record_shim(paths, info)
        recorded.append(True)
        if prepared is not None:
            prepared(info)

    try:
        if write_isolated is not None:
            info = shake.run(lambda _pid: isolated, wait_exec=start_now, release=False, early=early)
        else:
            info = shake.run(network_step(rt, rec, files), wait_exec=start_now, early=early)
    except BaseException:
        _kill_quietly(shake.info.get("pid"))
        wait_gone(shake.info.get("shim"))
        if recorded:  # the shim removes it when it ends, unless it ended before we wrote it
            paths.shim_file.unlink(missing_ok=True)
        raise
    finally:
        shake.close()
        os.waitpid(pid0, 0)  # the detaching child: gone by now, or about to be
    return info


def record_shim(paths: ContainerPaths, info: dict) -> None:
    """Remember the shim's and the init's pids (with start times against pid reuse)."""
    write_json(
        paths.shim_file,
        {k: info.get(k) for k in ("pid", "pid_start", "shim", "shim_start")},
    )
    if info.get("network") is not None:
        write_json(paths.network_file, info["network"])


def respawn(rt, rec: dict, args: dict) -> None:
    """Run again in the shim's own process (restart policy), then exec the shim again."""
    paths = ContainerPaths(rt.config, rec["id"])
    files = etc_files(rt, rec, paths)
    joins, pid_fd = _namespace_fds(rt, rec)
    fds = {
        k: args.get(k)
        for k in ("out_r", "out_w", "err_r", "err_w", "in_r", "in_w")
        if args.get(k) is not None
    }
    if rec["spec"]["tty"]:  # a new devpts comes with the new mount namespace: a new pty
        fds.update(make_stdio({"tty": True, "stdin_open": False}))
        args["pty_sock"] = fds["pty_sock"]
    stdio = child_stdio(fds)
    msg_r, msg_w = os.pipe()
    go_r, go_w = os.pipe()
    child = _child_plan(rt, rec, paths, files, stdio, fifo=False)
    child["pty_peer"] = fds.get("pty_peer")
    child.update(msg_fd=msg_w, go_fd=go_r, join_fds=joins)
    owned = _userns_fds(child)
    procs = defer_cgroup_join(child)
    cpid = _fork_init(child, rec["spec"]["namespaces"].get("pid", "private"), pid_fd)
    for fd in owned:
        os.close(fd)
    with contextlib.suppress(OSError):  # failed, the init reads EOF and reports it
        join_cgroup(child, procs, cpid)
    # Threads (the network step uses one) must live in this process's own PID namespace.
    reset_pid_namespace()
    os.close(msg_w)
    os.close(go_r)
    shake = Handshake(msg_r, go_w)
    me = os.getpid()
    shake.info.update(
        pid=cpid, shim=me, shim_start=proc_start_time(me), pid_start=proc_start_time(cpid)
    )
    try:
        info = shake.run(network_step(rt, rec, files))
    except BerthError:
        _kill_quietly(cpid)
        info = None
    finally:
        shake.close()
    if info is not None:
        # The count first: a reader that sees the new pid (record_shim) sees its count too.
        state = rt.store.read_state(rec["id"])
        state.update(started_at=rt.store.now(), restart_count=args["restart_count"])
        rt.store.write_state(rec["id"], state)
        record_shim(paths, info)
    args["pid"] = cpid
    exec_shim(args)
