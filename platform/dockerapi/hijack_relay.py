"""After `101 UPGRADED`: relay one hijacked connection to the host agent's session and back.

Client bytes go to the agent as signed terminal commands (the web terminal's protocol,
dashboard/terminal_protocol.py: input, end of input, resize, close); the agent's output comes
back through the session's Channels group and is written raw (TTY) or in Docker's multiplexed
frames. The detach keys (ctrl-p ctrl-q by default) end an attach or an exec with a TTY and leave
the container running, as Docker's daemon does. Live relays are kept by container and exec so
that the resize calls, which arrive as separate requests, reach them.
"""

import asyncio
import contextlib
import logging
import threading

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.core.cache import cache

from dashboard import terminal_protocol as proto
from dockerapi import execs, frames, hijack
from operations.sessions import signed_command

log = logging.getLogger(__name__)
READY_TIMEOUT = 30.0  # seconds for the host agent to open its side
START_TIMEOUT = 60.0  # seconds an attach waits for its container to start
START_POLL = 0.1
READ_CHUNK = 65536
MAX_PENDING = 256  # client messages held until the agent is ready

_live: dict[str, "Relay"] = {}
_live_lock = threading.Lock()


def attach_key(container_pk: int, user_pk: int) -> str:
    """Registry key of a user's attach to a container."""
    return f"attach:{container_pk}:{user_pk}"


def exec_key(exec_id: str) -> str:
    """Registry key of an exec's session."""
    return f"exec:{exec_id}"


def resize_live(key: str, cols: int, rows: int) -> bool:
    """Resize the live session under `key` (from any thread); False when there is none."""
    with _live_lock:
        relay = _live.get(key)
    if relay is None:
        return False
    relay.loop.call_soon_threadsafe(relay.resize, cols, rows)
    return True


class DetachWatcher:
    """Finds the detach sequence in client input; bytes that only began it are passed on."""

    def __init__(self, sequence: bytes):
        self.sequence = sequence
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to pass on, whether the sequence was completed)."""
        if not self.sequence:
            return data, False
        out = bytearray()
        for byte in data:
            expected = self.sequence[len(self.held)]
            if byte == expected:
                self.held += bytes([byte])
                if self.held == self.sequence:
                    self.held = b""
                    return bytes(out), True
                continue
            out += self.held
            self.held = b""
            if byte == self.sequence[0]:
                self.held = bytes([byte])
            else:
                out.append(byte)
        return bytes(out), False


class Relay:
    """One upgraded connection and its host session."""

    def __init__(self, plan, reader, writer, first_bytes: bytes = b""):
        self.plan = plan
        self.reader, self.writer = reader, writer
        self.first_bytes = first_bytes
        self.layer = get_channel_layer()
        self.loop = asyncio.get_running_loop()
        self.agent_channel = None
        self.pending: list[dict] = []
        self.seq = 0
        self.size = (plan.cols, plan.rows) if plan.cols and plan.rows else None
        self.ended = asyncio.Event()
        self.key = exec_key(plan.exec_id) if plan.exec_id else attach_key(
            plan.container_pk, plan.user_pk
        )  # fmt: skip

    async def run(self) -> None:
        """Relay until the session ends, the client leaves or detaches."""
        channel = await self.layer.new_channel("berth-docker.")
        await self.layer.group_add(self.plan.group, channel)
        with _live_lock:
            _live[self.key] = self
        tasks = []
        try:
            if self.plan.wait_until_running and not await self._started():
                return
            await sync_to_async(self.plan.open, thread_sensitive=False)()
            tasks = [
                asyncio.ensure_future(self._guarded(self._from_agent(channel))),
                asyncio.ensure_future(self._guarded(self._from_client(), ends=False)),
                asyncio.ensure_future(self._guarded(self._ready_watchdog(), ends=False)),
            ]
            await self.ended.wait()
        except Exception as err:  # a refusal or a broker failure after the upgrade
            message = getattr(err, "message", None) or str(err)
            log.info("docker api session %s ended early: %s", self.plan.session, message)
            await self._error_text(message)
        finally:
            for task in tasks:
                task.cancel()
            with _live_lock:
                if _live.get(self.key) is self:
                    del _live[self.key]
            if self.agent_channel:
                with contextlib.suppress(Exception):
                    await self._to_agent({"type": proto.CLOSE})
            with contextlib.suppress(Exception):
                await self.layer.group_discard(self.plan.group, channel)
            with contextlib.suppress(Exception):
                self.writer.close()

    async def _guarded(self, work, ends: bool = True) -> None:
        """Run one side of the relay; a failure is logged and ends the session."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("docker api session %s failed", self.plan.session)
            self.ended.set()
        else:
            if ends:
                self.ended.set()

    async def _started(self) -> bool:
        """Wait until the container runs (an attach made before the start)."""
        deadline = self.loop.time() + START_TIMEOUT
        check = sync_to_async(hijack.container_running, thread_sensitive=False)
        while self.loop.time() < deadline:
            status = await check(self.plan.container_pk)
            if status in ("running", "paused", "restarting"):
                return True
            if status == "removed" or self.reader.at_eof():
                return False
            await asyncio.sleep(START_POLL)
        return False

    async def _ready_watchdog(self) -> None:
        await asyncio.sleep(READY_TIMEOUT)
        if self.agent_channel is None:
            await self._error_text("the host agent did not answer")
            self.ended.set()

    async def _error_text(self, message: str) -> None:
        """Tell the client why the stream ends (on stderr when multiplexed)."""
        data = f"Berth: {message}\r\n".encode()
        with contextlib.suppress(Exception):
            self.writer.write(data if self.plan.tty else frames.frame("stderr", data))
            await self.writer.drain()

    async def _from_agent(self, channel: str) -> None:
        while True:
            message = await self.layer.receive(channel)
            kind = message.get("type")
            if kind == proto.READY:
                self.agent_channel = message["channel"]
                if self.size:
                    await self._to_agent(
                        {"type": proto.RESIZE, "cols": self.size[0], "rows": self.size[1]}
                    )
                for held in self.pending:
                    await self._to_agent(held)
                self.pending = []
            elif kind == proto.OUTPUT:
                data = bytes(message.get("data") or b"")
                if not self.plan.tty:
                    data = frames.frame(message.get("stream") or "stdout", data)
                try:
                    self.writer.write(data)
                    await self.writer.drain()
                except (ConnectionError, RuntimeError):
                    self.ended.set()
                    return
            elif kind == proto.EXIT:
                self.agent_channel = None
                if self.plan.exec_id:
                    cache.set(
                        execs.exit_key(self.plan.exec_id),
                        message.get("code"),
                        execs.EXEC_MAX_AGE,
                    )
                if message.get("code") is None and message.get("message"):
                    await self._error_text(message["message"])
                self.ended.set()
                return

    async def _from_client(self) -> None:
        watcher = DetachWatcher(self.plan.detach_keys)
        data = self.first_bytes
        while True:
            if data and self.plan.stdin:
                data, detached = watcher.feed(data)
                if data:
                    await self._send_input(data)
                if detached:
                    self.ended.set()
                    return
            try:
                data = await self.reader.read(READ_CHUNK)
            except ConnectionError:
                data = b""
            if not data:
                if self.plan.stdin and self.plan.tty and not self.plan.exec_id:
                    # As dockerd does: the end of a client's input ends its attach to a TTY
                    # (the container's terminal stays open), rather than leaving the client
                    # waiting for output that only stops when the container does.
                    self.ended.set()
                    return
                # A half-close is the end of the client's input; the output goes on.
                if self.plan.stdin:
                    await self._command({"type": proto.EOF})
                return

    async def _send_input(self, data: bytes) -> None:
        for start in range(0, len(data), proto.MAX_INPUT):
            await self._command(
                {"type": proto.INPUT, "data": data[start : start + proto.MAX_INPUT]}
            )

    def resize(self, cols: int, rows: int) -> None:
        """A resize call for this session (runs on the relay's loop)."""
        self.size = proto.clamp_size(cols, rows)
        if self.agent_channel:
            asyncio.ensure_future(
                self._to_agent({"type": proto.RESIZE, "cols": self.size[0], "rows": self.size[1]})
            )

    async def _command(self, message: dict) -> None:
        if self.agent_channel:
            await self._to_agent(message)
        elif len(self.pending) < MAX_PENDING:
            self.pending.append(message)

    async def _to_agent(self, message: dict) -> None:
        """One command to the agent's relay, signed for this session and host."""
        self.seq += 1
        await self.layer.send(
            self.agent_channel,
            signed_command(self.plan.host_name, self.plan.session, self.seq, message),
        )
