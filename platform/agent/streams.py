"""The agent side of the web terminal: relay bytes between a container session and the browser.

`agent.relay_terminal(operation_id)` runs on the container's host. It claims the Operation the
web created (after the gate allowed and audited the session), opens the session, exec on a
new PTY or attach to the container's TTY through the shim's socket, and relays it over the
Channels layer (Redis): output to the session's group, input, resizes and close from the
agent's own channel. The relay runs in a thread so a long session never holds a worker slot.
"""

import asyncio
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

from celery import shared_task
from channels.layers import get_channel_layer
from django.db import close_old_connections

from agent import admission, claims, containers_ops, lookup
from agent.hostname import this_host
from agent.runtime_handle import get_runtime
from containers.models import Container
from dashboard import terminal_protocol as proto
from operations.models import Operation

log = logging.getLogger(__name__)
CHUNK = 65536
IDLE_SECONDS = 3600  # a session nobody typed into for an hour is closed
EXIT_GRACE = 2.0


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


class ExecSession:
    """A program started in the container's namespaces on a PTY that the agent holds."""

    def __init__(self, rt, runtime_id: str, argv: list[str], cols: int, rows: int, user=None):
        from runtime.errors import BerthError  # the agent is the only place runtime is loaded

        master, slave = os.openpty()
        set_size(master, cols, rows)
        try:
            self.helper = rt.exec_spawn(
                runtime_id,
                argv,
                [slave, slave, slave],
                env=["TERM=xterm-256color"],
                user=user,
                tty=True,
            )
        except BerthError as err:
            os.close(master)
            raise SessionError(str(err)) from None
        finally:
            os.close(slave)
        self.fd = master
        os.set_blocking(master, False)

    def read(self) -> bytes:
        """Output so far; b'' at the end (EIO: the program and its children closed the PTY)."""
        try:
            return os.read(self.fd, CHUNK)
        except BlockingIOError:
            return None
        except OSError:
            return b""

    def write(self, data: bytes) -> None:
        """Keystrokes to the program."""
        with contextlib.suppress(OSError):
            os.write(self.fd, data)

    def resize(self, cols: int, rows: int) -> None:
        """New window size."""
        with contextlib.suppress(OSError):
            set_size(self.fd, cols, rows)

    def close(self) -> int | None:
        """Hang up (SIGHUP through the PTY), reap the helper; returns the exit code if known."""
        with contextlib.suppress(OSError):
            os.close(self.fd)
        deadline = time.monotonic() + EXIT_GRACE
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.helper, os.WNOHANG)
            if pid:
                code = os.waitstatus_to_exitcode(status)
                return 128 - code if code < 0 else code
            time.sleep(0.02)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.helper, signal.SIGKILL)
        os.waitpid(self.helper, 0)
        return None


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
        self.rt, self.runtime_id = rt, runtime_id

    def read(self) -> bytes:
        """Output so far; b'' when the shim closed the socket (the container exited)."""
        try:
            return self.sock.recv(CHUNK)
        except BlockingIOError:
            return None
        except OSError:
            return b""

    def write(self, data: bytes) -> None:
        """Keystrokes to the container's TTY."""
        with contextlib.suppress(OSError):
            self.sock.sendall(data)

    def resize(self, cols: int, rows: int) -> None:
        """New window size, through the shim (the program in the container gets SIGWINCH)."""
        from runtime.errors import BerthError

        with contextlib.suppress(BerthError):
            self.rt.resize(self.runtime_id, cols, rows)

    def close(self) -> None:
        """Detach."""
        self.sock.close()
        return None


async def relay(session, group: str, session_id: str = "") -> None:
    """Pump output to the group and input from the agent's channel until either side ends."""
    door = admission.CommandDoor(session_id or group.removeprefix("berth-term-"), this_host())
    layer = get_channel_layer()
    channel = await layer.new_channel("berth-term-agent.")
    await layer.group_send(group, {"type": proto.READY, "channel": channel})
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    loop.add_reader(session.fd, readable.set)

    async def output():
        while True:
            await readable.wait()
            readable.clear()
            while True:
                data = session.read()
                if data is None:
                    break
                if not data:
                    return
                await layer.group_send(group, {"type": proto.OUTPUT, "data": data})

    async def commands():
        while True:
            try:
                message = await asyncio.wait_for(layer.receive(channel), IDLE_SECONDS)
            except TimeoutError:
                return
            refusal = door.refusal(message)
            if refusal:
                if door.first_refusal():
                    # Recorded once per session: a flood of forgeries must not flood the log.
                    await asyncio.to_thread(door.record, refusal)
                continue
            kind = message.get("type")
            if kind == proto.INPUT:
                session.write(bytes(message.get("data", b""))[: proto.MAX_INPUT])
            elif kind == proto.RESIZE:
                session.resize(*proto.clamp_size(message.get("cols"), message.get("rows")))
            elif kind == proto.CLOSE:
                return

    tasks = [asyncio.ensure_future(output()), asyncio.ensure_future(commands())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        loop.remove_reader(session.fd)


async def _notify(group: str, message: dict) -> None:
    await get_channel_layer().group_send(group, message)


def run_session(op_id: int, session, group: str) -> None:
    """Thread body: relay, then close the session and record the outcome."""
    code, error = None, ""
    try:
        asyncio.run(relay(session, group))
    except Exception as err:  # the relay must always end in a recorded outcome
        log.exception("terminal relay of operation %s failed", op_id)
        error = f"relay failed: {err}"
    finally:
        code = session.close()
        message = "" if code is None else f"exit code {code}"
        with contextlib.suppress(Exception):
            asyncio.run(
                _notify(group, {"type": proto.EXIT, "code": code, "message": error or message})
            )
        close_old_connections()
        op = Operation.objects.get(pk=op_id)
        claims.finish(op, result={"exit_code": code}, error=error)
        close_old_connections()


def _refuse_root(rt, runtime_id: str, user, params: dict) -> None:
    from runtime.errors import BerthError

    try:
        containers_ops.refuse_root_unless_allowed(rt, runtime_id, user, params)
    except BerthError as err:
        raise SessionError(str(err)) from None


def open_session(op, container):
    """Exec or attach, as the Operation says."""
    params = op.params
    state = lookup.find(get_runtime(), container)
    if state is None:
        raise SessionError(
            f"container {container.name} does not exist on host {container.host.name}"
        )
    rt = get_runtime()
    if params.get("mode") == "attach":
        if not (container.spec or {}).get("tty"):
            raise SessionError(f"container {container.name} has no TTY")
        _refuse_root(rt, state["id"], None, params)
        session = AttachSession(rt, state["id"])
        if params.get("cols") and params.get("rows"):
            session.resize(*proto.clamp_size(params.get("cols"), params.get("rows")))
        return session
    argv = params.get("command") or []
    if not argv or not all(isinstance(a, str) for a in argv):
        raise SessionError("the terminal needs a command")
    cols, rows = proto.clamp_size(params.get("cols"), params.get("rows"))
    _refuse_root(rt, state["id"], params.get("user") or None, params)
    return ExecSession(rt, state["id"], argv, cols, rows, user=params.get("user") or None)


@shared_task(name=proto.TASK_NAME, bind=True)
def relay_terminal(self, operation_id, host=None, envelope=None):
    """Open the terminal session of one Operation and relay it in a thread; returns at once."""
    admission.admit(
        proto.TASK_NAME,
        [operation_id],
        {"host": host} if host else {},
        envelope,
        host=this_host(),
    )
    op = claims.claim(
        int(operation_id), host_name=host or this_host(), task_id=self.request.id or ""
    )
    if op is None or op.kind != proto.OPERATION_KIND:
        if op is not None:
            claims.finish(op, error=f"operation kind {op.kind} is not a terminal")
        return {"started": False}
    group = proto.group_name(op.params.get("session", ""))
    container = (
        Container.objects.select_related("host")
        .filter(pk=op.target_id, host__name=op.host.name)
        .first()
    )
    try:
        if container is None:
            raise SessionError("the container is gone")
        session = open_session(op, container)
    except SessionError as err:
        claims.finish(op, error=str(err))
        asyncio.run(_notify(group, {"type": proto.EXIT, "code": None, "message": str(err)}))
        return {"started": False, "error": str(err)}
    threading.Thread(
        target=run_session, args=(op.pk, session, group), name=f"berth-term-{op.pk}", daemon=True
    ).start()
    return {"started": True}
