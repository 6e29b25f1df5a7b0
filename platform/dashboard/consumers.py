"""The web terminal's WebSocket: browser <-> Channels layer <-> the host agent's relay task.

The socket is accepted first so that a refusal can be shown to the person; nothing reaches a
container before `sessions.open_session` (gate, audit, Operation) has succeeded.
"""

import asyncio
import json
import uuid
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from audit import context
from config.errors import PlatformError
from dashboard import sessions
from dashboard import terminal_protocol as proto
from operations.models import Operation
from operations.sessions import signed_command

READY_TIMEOUT = 20  # seconds for the host agent to answer
MAX_BUFFER = 64  # input messages kept until the agent is ready


@database_sync_to_async
def _open(user, container_id, source_ip, **kwargs):
    """Open the session through the gate; returns the name of the container's host."""
    with context.bind(source_ip=source_ip):
        op_id = sessions.open_session(user, container_id, **kwargs)
    return Operation.objects.filter(pk=op_id).values_list("host__name", flat=True).first()


class TerminalConsumer(AsyncWebsocketConsumer):
    """One terminal session: exec into a running container or attach to its TTY."""

    group = None
    agent_channel = None

    async def connect(self):
        self.pending = []
        self.watchdog = None
        self.seq = 0
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.fail("log in first", code=4401)
            return
        query = {
            k: v[-1] for k, v in parse_qs(self.scope.get("query_string", b"").decode()).items()
        }
        session = self.session = uuid.uuid4().hex
        self.group = proto.group_name(session)
        await self.channel_layer.group_add(self.group, self.channel_name)
        client = self.scope.get("client") or (None, None)
        try:
            self.host_name = await _open(
                user,
                self.scope["url_route"]["kwargs"]["pk"],
                client[0],
                session=session,
                mode=query.get("mode", "exec"),
                command=query.get("cmd", "/bin/sh"),
                cols=query.get("cols", 80),
                rows=query.get("rows", 24),
                exec_user=query.get("user", ""),
            )
        except PlatformError as err:
            await self.fail(err.message, code=4000 + err.status)
            return
        await self.status("starting")
        self.watchdog = asyncio.ensure_future(self._expect_ready())

    async def _expect_ready(self):
        await asyncio.sleep(READY_TIMEOUT)
        if self.agent_channel is None:
            await self.fail("the host agent did not answer", code=4504)

    async def status(self, state, message=""):
        await self.send(
            text_data=json.dumps({"type": "status", "state": state, "message": message})
        )

    async def fail(self, message, code=4000):
        await self.status("error", message)
        await self.close(code=code)

    async def disconnect(self, code):
        if self.watchdog:
            self.watchdog.cancel()
        if self.agent_channel:
            await self.to_agent({"type": proto.CLOSE})
            self.agent_channel = None
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        if bytes_data is not None:
            message = {"type": proto.INPUT, "data": bytes_data[: proto.MAX_INPUT]}
        else:
            try:
                msg = json.loads(text_data or "{}")
            except ValueError:
                return
            kind = msg.get("type")
            if kind == "input" and isinstance(msg.get("data"), str):
                message = {"type": proto.INPUT, "data": msg["data"].encode()[: proto.MAX_INPUT]}
            elif kind == "resize":
                cols, rows = proto.clamp_size(msg.get("cols"), msg.get("rows"))
                message = {"type": proto.RESIZE, "cols": cols, "rows": rows}
            elif kind == "detach":
                # Tell the agent at once: the session ends even if the close handshake is lost.
                if self.agent_channel:
                    await self.to_agent({"type": proto.CLOSE})
                    self.agent_channel = None
                await self.status("detached")
                await self.close(code=1000)
                return
            else:
                return
        if self.agent_channel:
            await self.to_agent(message)
        elif len(self.pending) < MAX_BUFFER:
            self.pending.append(message)

    async def to_agent(self, message: dict):
        """Send one command to the agent's relay, signed for this session and host."""
        self.seq += 1
        await self.channel_layer.send(
            self.agent_channel, signed_command(self.host_name, self.session, self.seq, message)
        )

    # Messages from the agent's relay, through the session group.
    async def term_ready(self, event):
        self.agent_channel = event["channel"]
        if self.watchdog:
            self.watchdog.cancel()
        for message in self.pending:
            await self.to_agent(message)
        self.pending = []
        await self.status("ready")

    async def term_output(self, event):
        await self.send(bytes_data=bytes(event["data"]))

    async def term_exit(self, event):
        self.agent_channel = None
        code = event.get("code")
        message = event.get("message") or ("" if code is None else f"exit code {code}")
        await self.status("exited", message)
        await self.close(code=1000)
