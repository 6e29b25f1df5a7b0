"""The byte sources of a stream session on the host: a program on a PTY or on pipes, a TTY
container's own terminal, or a container's log followed as it grows.

Each session exposes `fds` (the descriptors to watch), `read(fd)` (a list of (stream, bytes),
None when nothing is ready, [] at that descriptor's end), `write`, `eof` (no more input),
`resize` and `close` (returns the exit code when there is one). The relay (agent/streams.py)
only sees this interface. Streams are named as Docker names them: stdout, stderr.
"""

import contextlib
import fcntl
import logging
import os
import signal
import socket
import struct
import termios
import threading
import time

log = logging.getLogger(__name__)
CHUNK = 65536
EXIT_GRACE = 2.0
# A program on pipes may still be writing its last bytes after closing its output.
PIPE_EXIT_GRACE = 10.0
STREAMS = ("stdout", "stderr")
START_WAIT = 60.0  # seconds a log follower waits for a stopped container to be started


class SessionError(Exception):
    """The session could not be opened; the message is for the person at the terminal."""


def set_size(fd: int, cols: int, rows: int) -> None:
    """TIOCSWINSZ on the PTY: the program in the container gets SIGWINCH."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def connect_unix(sock, path: str) -> None:
    """Connect to a unix socket, also one whose path is longer than sun_path's 108 bytes."""
    if len(os.fsencode(path)) < 100:
        sock.connect(path)
        return
    # Reach it through a descriptor of its directory: /proc/self/fd/N/name is short.
    directory = os.open(os.path.dirname(path), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sock.connect(f"/proc/self/fd/{directory}/{os.path.basename(path)}")
    finally:
        os.close(directory)


def _read_fd(fd: int):
    try:
        return os.read(fd, CHUNK)
    except BlockingIOError:
        return None
    except OSError:  # EIO on a PTY whose last writer closed it
        return b""


def _reap(pid: int, grace: float) -> int | None:
    """Wait up to `grace` seconds for the helper, then kill it; its exit code when known."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


class ExecSession:
    """A program started in the container's namespaces on a PTY that the agent holds."""

    def __init__(self, rt, runtime_id, argv, cols, rows, user=None, env=(), workdir=None):
        from runtime.errors import BerthError  # the agent is the only place runtime is loaded

        master, slave = os.openpty()
        set_size(master, cols, rows)
        try:
            self.helper = rt.exec_spawn(
                runtime_id,
                argv,
                [slave, slave, slave],
                env=["TERM=xterm-256color", *env],
                user=user,
                workdir=workdir,
                tty=True,
            )
        except BerthError as err:
            os.close(master)
            raise SessionError(str(err)) from None
        finally:
            os.close(slave)
        self.fd = master
        self.fds = [master]
        os.set_blocking(master, False)

    def read(self, fd=None):
        """Output so far as [("stdout", bytes)]; [] at the end (the PTY's last writer left)."""
        data = _read_fd(self.fd)
        return data if data is None else ([("stdout", data)] if data else [])

    def write(self, data: bytes) -> None:
        """Keystrokes to the program."""
        with contextlib.suppress(OSError):
            os.write(self.fd, data)

    def eof(self) -> None:
        """End of input: ^D, as a terminal sends it."""
        self.write(b"\x04")

    def resize(self, cols: int, rows: int) -> None:
        """New window size."""
        with contextlib.suppress(OSError):
            set_size(self.fd, cols, rows)

    def close(self) -> int | None:
        """Hang up (SIGHUP through the PTY), reap the helper; returns the exit code if known."""
        with contextlib.suppress(OSError):
            os.close(self.fd)
        return _reap(self.helper, EXIT_GRACE)


class PipeExecSession:
    """A program in the container without a TTY: stdout and stderr kept apart, stdin a pipe
    (or /dev/null when the client sends no input), as `docker exec` without -t runs it."""

    def __init__(self, rt, runtime_id, argv, user=None, env=(), workdir=None, stdin=False):
        from runtime.errors import BerthError

        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        if stdin:
            in_r, in_w = os.pipe2(os.O_CLOEXEC)
        else:
            in_r, in_w = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), None
        try:
            self.helper = rt.exec_spawn(
                runtime_id, argv, [in_r, out_w, err_w], env=list(env), user=user, workdir=workdir
            )
        except BerthError as err:
            for fd in (out_r, err_r, in_w):
                if fd is not None:
                    os.close(fd)
            raise SessionError(str(err)) from None
        finally:
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        self.stdin = in_w
        self.names = {out_r: "stdout", err_r: "stderr"}
        self.fds = [out_r, err_r]
        for fd in self.fds:
            os.set_blocking(fd, False)

    def read(self, fd):
        """[(stream, bytes)] from one of the output pipes; [] at its end."""
        data = _read_fd(fd)
        return data if data is None else ([(self.names[fd], data)] if data else [])

    def write(self, data: bytes) -> None:
        """Input to the program (dropped when it was started without stdin)."""
        if self.stdin is not None:
            with contextlib.suppress(OSError):
                os.write(self.stdin, data)

    def eof(self) -> None:
        """The client closed its input: the program reads end-of-file."""
        if self.stdin is not None:
            with contextlib.suppress(OSError):
                os.close(self.stdin)
            self.stdin = None

    def resize(self, cols: int, rows: int) -> None:
        """No terminal, nothing to resize."""

    def close(self) -> int | None:
        """Close the pipes and reap the helper; returns the program's exit code if known."""
        self.eof()
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        return _reap(self.helper, PIPE_EXIT_GRACE)


class AttachSession:
    """The container's own TTY, through the shim's attach socket (detaching leaves it running)."""

    def __init__(self, rt, runtime_id: str):
        from runtime.errors import BerthError

        try:
            path = rt.attach_socket(runtime_id)
        except BerthError as err:
            raise SessionError(str(err)) from None
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            connect_unix(self.sock, path)
        except OSError as err:
            self.sock.close()
            raise SessionError(f"cannot attach: {err.strerror or err}") from None
        self.sock.setblocking(False)
        self.fd = self.sock.fileno()
        self.fds = [self.fd]
        self.rt, self.runtime_id = rt, runtime_id

    def read(self, fd=None):
        """Output so far as [("stdout", bytes)]; [] when the shim closed (the container exited)."""
        try:
            data = self.sock.recv(CHUNK)
        except BlockingIOError:
            return None
        except OSError:
            return []
        return [("stdout", data)] if data else []

    def write(self, data: bytes) -> None:
        """Keystrokes to the container's TTY."""
        with contextlib.suppress(OSError):
            self.sock.sendall(data)

    def eof(self) -> None:
        """The container's TTY stays open for others: nothing to close."""

    def resize(self, cols: int, rows: int) -> None:
        """New window size, through the shim (the program in the container gets SIGWINCH)."""
        from runtime.errors import BerthError

        with contextlib.suppress(BerthError):
            self.rt.resize(self.runtime_id, cols, rows)

    def close(self) -> None:
        """Detach."""
        self.sock.close()
        return None


class LogSession:
    """A container's log followed as it grows, until the container stops or the client leaves.

    A thread reads the runtime's log iterator and writes each entry into a pipe as
    (stream byte, length, bytes), so the relay watches one descriptor and entries keep their
    order across stdout and stderr. `since` (the time the client attached) keeps what the
    container wrote before out: what `docker attach`, `docker start -a` and `docker run`
    without -d show.
    """

    _HEADER = struct.Struct(">BI")

    def __init__(
        self, rt, runtime_id: str, *, tail=None, since=None, timestamps=False, wait_start=False
    ):
        from runtime.errors import BerthError

        self.stopped = threading.Event()
        self.rt, self.runtime_id = rt, runtime_id
        self.options = {"tail": tail, "since": since}
        self.timestamps = timestamps
        try:
            # A stopped container's log would end at once: `docker start -a` attaches first,
            # then starts it, so wait for that start before following.
            self.start_mark = rt.state(runtime_id).get("started_at") if wait_start else None
        except BerthError as err:
            raise SessionError(str(err)) from None
        self.wait_start = wait_start
        self.fd, self.writer = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(self.fd, False)
        self.fds = [self.fd]
        self.buffer = b""
        self.thread = threading.Thread(target=self._pump, name="berth-log-follow", daemon=True)
        self.thread.start()

    def _started(self) -> bool:
        from runtime.errors import NotFound

        deadline = time.monotonic() + START_WAIT
        while not self.stopped.is_set() and time.monotonic() < deadline:
            try:
                state = self.rt.state(self.runtime_id)
            except NotFound:
                return False
            except Exception:  # noqa: BLE001 (a look racing the start: look again)
                time.sleep(0.05)
                continue
            if state.get("status") in ("running", "paused", "restarting"):
                return True
            if state.get("started_at") != self.start_mark:
                return True  # it ran, and already exited, between two looks
            time.sleep(0.05)
        return False

    def _pump(self) -> None:
        try:
            if self.wait_start and not self._started():
                return
            entries = self.rt.logs(
                self.runtime_id, follow=True, stop=self.stopped.is_set, **self.options
            )
            for stream, stamp, data in entries:
                if self.stopped.is_set():
                    break
                if self.timestamps and stamp:
                    data = stamp.encode() + b" " + data
                code = 2 if stream == "stderr" else 1
                os.write(self.writer, self._HEADER.pack(code, len(data)) + data)
        except OSError:  # the reader closed: the client left
            pass
        except Exception:  # the relay must see an end, whatever the log holds
            log.exception("following a container log failed")
        finally:
            with contextlib.suppress(OSError):
                os.close(self.writer)

    def read(self, fd=None):
        """Complete entries as [(stream, bytes)]; None when none is complete; [] at the end."""
        data = _read_fd(self.fd)
        if data is None:
            return None
        if not data:
            return []
        self.buffer += data
        out = []
        size = self._HEADER.size
        while len(self.buffer) >= size:
            code, length = self._HEADER.unpack_from(self.buffer)
            if len(self.buffer) < size + length:
                break
            out.append((STREAMS[code - 1], self.buffer[size : size + length]))
            self.buffer = self.buffer[size + length :]
        return out or None

    def write(self, data: bytes) -> None:
        """A log takes no input."""

    def eof(self) -> None:
        """Nothing to close."""

    def resize(self, cols: int, rows: int) -> None:
        """No terminal."""

    def close(self) -> None:
        """Stop following (the thread ends at its next entry or when the writer fails)."""
        self.stopped.set()
        with contextlib.suppress(OSError):
            os.close(self.fd)
        return None
