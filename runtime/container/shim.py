"""The per-container monitor: parent of the container, owner of its stdio, logs and exit record.

Started as `python -I -S shim.py ARGS_JSON` by the launcher (it replaces the launcher's
forked process, so it is the container's parent without the launcher's memory). It uses
the standard library only, to stay small. It writes every output line to a JSON-lines log
with a timestamp, serves attach clients on a unix socket, records the exit atomically and,
when the restart policy says so, execs the respawner in its own process (same pid).

Stop grace: a stop that does not wait (runtime/container/grace.py) writes {"kill_at": T}
(T on the monotonic clock) into the stop-flag file and sends SIGURG; the shim kills the
init at T if it still runs, so no control-plane process sits out the grace period.
"""

import errno
import json
import os
import select
import signal
import socket
import sys
import time

_CHUNK = 65536
_MAX_LINE = 16384


def now_iso() -> str:
    """RFC 3339 UTC time with nanoseconds, like Docker's json-file driver."""
    ns = time.time_ns()
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000))
        + f".{ns % 1_000_000_000:09d}Z"
    )


def write_json(path: str, data: dict) -> None:
    """Atomic write: tmp file + rename."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


class Shim:
    """One container's monitor loop."""

    def __init__(self, args: dict):
        self.args = args
        self.pid = args["pid"]
        self.log = open(args["log"], "ab", buffering=0)  # noqa: SIM115 (lives as long as the shim)
        self.partial = {"stdout": b"", "stderr": b""}
        self.sources = {}  # fd -> stream name
        self.master = None
        if args["tty"]:
            # The container's init makes its pty inside its own devpts and sends the master.
            sock = socket.socket(fileno=args["pty_sock"])
            _, fds, _, _ = socket.recv_fds(sock, 1, 1, socket.MSG_CMSG_CLOEXEC)
            sock.close()
            if fds:
                self.master = fds[0]
                self.sources[self.master] = "stdout"
        else:
            self.sources[args["out_r"]] = "stdout"
            self.sources[args["err_r"]] = "stderr"
        for fd in self.sources:
            os.set_blocking(fd, False)
        self.input_fd = self.master if args["tty"] else args.get("in_w")
        self.winsize = socket.socket(fileno=args["winsize"]) if args.get("winsize") else None
        self.listen = socket.socket(fileno=args["listen"])
        self.listen.setblocking(False)
        self.clients: dict[int, socket.socket] = {}

    def log_data(self, stream: str, data: bytes) -> None:
        """Split output into lines and log each with a timestamp."""
        buf = self.partial[stream] + data
        lines = buf.split(b"\n")
        self.partial[stream] = lines.pop()
        if len(self.partial[stream]) > _MAX_LINE:  # never hold an endless line in memory
            lines.append(self.partial[stream])
            self.partial[stream] = b""
        else:
            lines = [line + b"\n" for line in lines]
        if lines:
            self._write_lines(stream, lines)

    def _write_lines(self, stream: str, lines: list[bytes]) -> None:
        stamp = now_iso()
        out = []
        for line in lines:
            text = line.decode("utf-8", "surrogateescape")
            out.append(json.dumps({"log": text, "stream": stream, "time": stamp}) + "\n")
        self.log.write("".join(out).encode())

    def flush(self) -> None:
        """Log what is left of unfinished lines."""
        for stream, rest in self.partial.items():
            if rest:
                self._write_lines(stream, [rest])
                self.partial[stream] = b""

    def forward(self, data: bytes) -> None:
        """Send output to every attached client, dropping slow ones."""
        for fd, client in list(self.clients.items()):
            try:
                client.send(data)
            except OSError:
                # A slow or gone client is dropped: the container never waits for a reader.
                self.drop(fd)

    def drop(self, fd: int) -> None:
        """Forget and close one attach client."""
        client = self.clients.pop(fd, None)
        if client:
            client.close()

    def read_source(self, fd: int) -> bool:
        """Read one chunk of output; False at EOF."""
        try:
            data = os.read(fd, _CHUNK)
        except BlockingIOError:
            return True
        except OSError as err:
            if err.errno == errno.EIO:  # pty with no slave left
                return False
            raise
        if not data:
            return False
        self.log_data(self.sources[fd], data)
        self.forward(data)
        return True

    def accept(self) -> None:
        """Accept a new attach client."""
        try:
            client, _ = self.listen.accept()
        except BlockingIOError:
            return
        client.setblocking(False)
        self.clients[client.fileno()] = client

    def client_input(self, fd: int) -> None:
        """Copy a client's input to the container's stdin or pty."""
        try:
            data = self.clients[fd].recv(_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.drop(fd)
            return
        if self.input_fd is not None:
            try:  # noqa: SIM105 (no contextlib: the shim imports as little as it can)
                os.write(self.input_fd, data)
            except OSError:
                pass

    def resize(self) -> None:
        """Window sizes (two native uint16: rows, cols) to the pty; the kernel sends SIGWINCH."""
        import fcntl
        import struct
        import termios

        while True:
            try:
                data = self.winsize.recv(16, socket.MSG_DONTWAIT)
            except OSError:
                return
            if len(data) >= 4 and self.master is not None:
                rows, cols = struct.unpack("HH", data[:4])
                if rows and cols:
                    try:  # noqa: SIM105
                        fcntl.ioctl(
                            self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0)
                        )
                    except OSError:
                        pass

    def run(self) -> int:
        """Serve until the container's init exits; return its exit code."""
        pidfd = os.pidfd_open(self.pid)
        poller = select.poll()
        for fd in (*self.sources, self.listen.fileno(), pidfd):
            poller.register(fd, select.POLLIN)
        winsize_fd = self.winsize.fileno() if self.winsize else -1
        if self.winsize:
            poller.register(winsize_fd, select.POLLIN)
        open_sources = set(self.sources)
        # SIGURG (ignored by default, so an older shim survives it) means "read the deadline".
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.signal(signal.SIGURG, lambda *_: None)
        signal.set_wakeup_fd(wake_w)
        poller.register(wake_r, select.POLLIN)
        # A stop armed before the handler was in place: its SIGURG was ignored, its file is not.
        kill_at, killed = read_kill_at(self.args["stop_flag"]), False
        while True:
            timeout = None
            if kill_at and not killed:
                left = kill_at - time.monotonic()
                if left <= 0:
                    try:  # noqa: SIM105
                        os.kill(self.pid, signal.SIGKILL)  # the PID namespace's init: all die
                    except ProcessLookupError:
                        pass
                    killed = True
                else:
                    timeout = left * 1000
            # Accept first: a client that connected before start must see the first output.
            events = poller.poll(timeout)
            for fd, _ in sorted(events, key=lambda event: event[0] != self.listen.fileno()):
                if fd == wake_r:
                    try:  # noqa: SIM105
                        os.read(wake_r, 64)
                    except OSError:
                        pass
                    kill_at = read_kill_at(self.args["stop_flag"])
                    continue
                if fd == pidfd:
                    signal.set_wakeup_fd(-1)
                    return self.finish(pidfd, open_sources)
                if fd == winsize_fd:
                    self.resize()
                    continue
                if fd == self.listen.fileno():
                    self.accept()
                    for cfd in self.clients:
                        poller.register(cfd, select.POLLIN)
                elif fd in self.sources:
                    if not self.read_source(fd):
                        poller.unregister(fd)
                        open_sources.discard(fd)
                elif fd in self.clients:
                    self.client_input(fd)
                    if fd not in self.clients:
                        poller.unregister(fd)
                else:
                    poller.unregister(fd)

    def finish(self, pidfd: int, open_sources: set) -> int:
        """Reap the init, drain the pipes, return the exit code (128+signal if killed)."""
        _, status = os.waitpid(self.pid, 0)
        os.close(pidfd)
        # Every process of the PID namespace is gone once its init is reaped; what they
        # wrote is still in the pipes: drain it without blocking.
        for fd in open_sources:
            while self.read_source(fd):
                try:
                    if not select.select([fd], [], [], 0)[0]:
                        break
                except OSError:
                    break
        self.flush()
        code = os.waitstatus_to_exitcode(status)
        return 128 - code if code < 0 else code


def read_kill_at(path: str) -> float:
    """The kill deadline armed in the stop-flag file (monotonic seconds), 0 when there is none."""
    try:
        with open(path) as f:
            return float(json.loads(f.read() or "{}").get("kill_at") or 0)
    except (OSError, ValueError, AttributeError, TypeError):
        return 0.0


def should_restart(args: dict, code: int) -> bool:
    """Docker's restart policies; a stop requested by the user always wins."""
    if os.path.exists(args["stop_flag"]):
        return False
    name, limit, count = (
        args["restart"]["name"],
        args["restart"]["max_retries"],
        args["restart_count"],
    )
    if name in ("always", "unless-stopped"):
        return True
    if name == "on-failure":
        return code != 0 and (limit == 0 or count < limit)
    return False


def main() -> None:
    """Entry point: monitor, record the exit, then exit or respawn."""
    args = json.loads(sys.argv[1])
    shim = Shim(args)
    code = shim.run()
    write_json(
        args["exit_file"],
        {"exit_code": code, "finished_at": now_iso(), "restart_count": args["restart_count"]},
    )
    for client in list(shim.clients.values()):
        client.close()
    if should_restart(args, code):
        # Docker's back-off: 100 ms doubling, capped.
        time.sleep(min(0.1 * (2 ** min(args["restart_count"], 6)), 5.0))
        if not os.path.exists(args["stop_flag"]):
            code_text = "import sys; sys.path.insert(0, sys.argv[2]); from runtime.container.respawn import main; main()"
            # Not -S: the respawner needs the venv's site-packages (pyroute2).
            next_count = str(args["restart_count"] + 1)
            os.execv(
                sys.executable,
                [
                    sys.executable,
                    "-I",
                    "-c",
                    code_text,
                    json.dumps(args),
                    args["project"],
                    next_count,
                ],
            )
    # Gone for good: drop the runtime record so reconcile() knows this was a clean end.
    try:  # noqa: SIM105
        os.unlink(args["shim_file"])
    except OSError:
        pass
    post_exit(args)
    sys.exit(0)


def _reset_pid_namespace() -> None:
    """Fork into our own PID namespace again (the container's one, which we made, is dead)."""
    import ctypes

    fd = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        ctypes.CDLL(None, use_errno=True).setns(fd, 0x20000000)  # CLONE_NEWPID
    finally:
        os.close(fd)


def post_exit(args: dict) -> None:
    """Start the post-exit hook detached (network release, --rm), unless the caller does it."""
    if not args.get("post_exit"):
        return
    if not args.get("auto_remove") and os.path.exists(args["caller_cleans"]):
        return
    code_text = (
        "import sys; sys.path.insert(0, sys.argv[2]); "
        "from runtime.container.postexit import main; main()"
    )
    _reset_pid_namespace()
    child = os.fork()
    if child == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                os.closerange(3, 1024)
                os.execv(
                    sys.executable,
                    [sys.executable, "-I", "-c", code_text, json.dumps(args), args["project"]],
                )
        finally:
            os._exit(0)
    os.waitpid(child, 0)


if __name__ == "__main__":
    main()
