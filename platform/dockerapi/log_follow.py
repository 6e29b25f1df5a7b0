"""`docker logs -f`: the container's log streamed as it grows, until it stops or the client leaves.

The web queues a `logs` session for the host's agent (operations/sessions.py), which follows the
log (agent/sessions.py LogSession) and sends each entry to the session's Channels group; the
response streams them in Docker's format (multiplexed without a TTY, raw with one). A client
that hangs up cancels the stream, and the agent is told to stop following (a signed close).
"""

import asyncio
import contextlib
import secrets

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection

from dashboard import terminal_protocol as proto
from dockerapi import frames
from operations.sessions import queue_session, signed_command

READY_TIMEOUT = 30.0  # seconds for the host agent to open its side


def stream(call, container, decision, *, params: dict, tty: bool, streams: set, summary: dict):
    """An async iterator of the response body; the decision is recorded when it starts."""
    session = secrets.token_hex(16)
    group = proto.group_name(session)
    host_name = container.host.name

    def open_session():
        try:
            return queue_session(
                call.user,
                container,
                decision,
                summary=summary,
                params=params | {"session": session, "mode": "logs"},
            )
        finally:
            connection.close()

    async def body():
        layer = get_channel_layer()
        channel = await layer.new_channel("berth-docker.")
        await layer.group_add(group, channel)
        agent = None
        try:
            await sync_to_async(open_session, thread_sensitive=False)()
            while True:
                wait = READY_TIMEOUT if agent is None else None
                try:
                    message = await asyncio.wait_for(layer.receive(channel), wait)
                except TimeoutError:
                    return
                kind = message.get("type")
                if kind == proto.READY:
                    agent = message["channel"]
                elif kind == proto.OUTPUT:
                    stream_name = message.get("stream") or "stdout"
                    if stream_name not in streams:
                        continue
                    data = bytes(message.get("data") or b"")
                    yield data if tty else frames.frame(stream_name, data)
                elif kind == proto.EXIT:
                    agent = None
                    return
        finally:
            if agent:
                with contextlib.suppress(Exception):
                    await layer.send(
                        agent, signed_command(host_name, session, 1, {"type": proto.CLOSE})
                    )
            with contextlib.suppress(Exception):
                await layer.group_discard(group, channel)

    return body()
