"""The terminal WebSocket: gate and audit on open, then a relay through the Channels layer.

The host agent's side is played by the test through the same channel layer (no runtime here);
tests/browser drives the real agent and runtime.
"""

import functools
import json

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from dash_helpers import make_container
from django.test import Client

from audit.models import AuditEvent
from dashboard import terminal_protocol as proto
from operations.models import Operation
from trust import envelope, keys

pytestmark = pytest.mark.django_db


def signed(message, op):
    """The command without its signature, after checking that signature as the agent would
    (control key, the operation's host, its session, the message's place in the sequence)."""
    public = keys.control_public_key()
    envelope.open_sealed(
        message["envelope"],
        {keys.key_id(public): public},
        task=message["type"],
        host=op.host.name,
        args=proto.signed_args(op.params["session"], message["seq"], message),
    )
    return {k: v for k, v in message.items() if k not in ("seq", "envelope")}


def run_async(fn):
    """Run an async test body on an event loop (no asyncio plugin needed)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return async_to_sync(fn)(*args, **kwargs)

    return wrapper


@pytest.fixture(autouse=True)
def keep_test_connection(monkeypatch):
    """channels closes "old" connections around each database call; inside the test's
    transaction (on PostgreSQL) that would close the test's own connection."""
    monkeypatch.setattr("channels.db.close_old_connections", lambda: None)


def _app():
    from config.asgi import application

    return application


async def connect(
    user_client, container_id, query="mode=exec&cmd=/bin/sh", origin="http://127.0.0.1"
):
    cookie = f"sessionid={user_client.cookies['sessionid'].value}" if user_client else ""
    headers = [(b"origin", origin.encode()), (b"host", b"127.0.0.1")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    comm = WebsocketCommunicator(
        _app(), f"/ws/containers/{container_id}/terminal/?{query}", headers=headers
    )
    connected, code = await comm.connect()
    return comm, connected, code


async def status(comm):
    return json.loads(await comm.receive_from(timeout=5))


@pytest.fixture
def sessions(users):
    """Logged-in Django test clients (their session cookies open the socket)."""

    def make(name):
        client = Client()
        client.force_login(users[name])
        return client

    return make


@run_async
async def test_anonymous_is_refused(containers):
    comm, connected, _ = await connect(None, containers["alpha"].pk)
    assert connected
    msg = await status(comm)
    assert msg["state"] == "error" and "log in" in msg["message"]
    assert (await comm.receive_output(timeout=5))["code"] == 4401


@run_async
async def test_cross_site_origin_is_refused(sessions, containers):
    client = await sync_to_async(sessions)("operator")
    comm, connected, _ = await connect(client, containers["alpha"].pk, origin="http://evil.example")
    assert not connected


@run_async
async def test_viewer_is_refused_and_audited(sessions, containers):
    client = await sync_to_async(sessions)("viewer")
    comm, _, _ = await connect(client, containers["alpha"].pk)
    msg = await status(comm)
    assert msg["state"] == "error" and "container.exec" in msg["message"]
    await comm.wait()
    denied = await sync_to_async(
        lambda: AuditEvent.objects.filter(
            actor="td-viewer", action="container.exec", outcome="denied"
        ).count()
    )()
    assert denied == 1
    assert not await sync_to_async(Operation.objects.exists)()


@run_async
async def test_other_teams_container_looks_missing(sessions, containers):
    client = await sync_to_async(sessions)("developer")
    comm, _, _ = await connect(client, containers["beta"].pk)
    msg = await status(comm)
    assert msg["state"] == "error" and "not found" in msg["message"]


@run_async
async def test_attach_needs_a_tty_and_exec_a_running_container(sessions, teams, host, containers):
    client = await sync_to_async(sessions)("developer")
    comm, _, _ = await connect(client, containers["alpha"].pk, query="mode=attach")
    assert "no TTY" in (await status(comm))["message"]
    stopped = await sync_to_async(make_container)(
        teams["alpha"], host, "td-off", observed_state="stopped"
    )
    comm, _, _ = await connect(client, stopped.pk)
    assert "not running" in (await status(comm))["message"]


@run_async
async def test_exec_as_root_into_another_teams_container_needs_exec_root(sessions, containers):
    # The operator is in no team: root (the image's default user) is refused, a plain user is not.
    client = await sync_to_async(sessions)("operator")
    comm, _, _ = await connect(client, containers["alpha"].pk)
    assert "container.exec_root" in (await status(comm))["message"]
    comm, _, _ = await connect(client, containers["alpha"].pk, query="mode=exec&cmd=sh&user=1000")
    assert (await status(comm))["state"] == "starting"
    await comm.disconnect()
    comm, _, _ = await connect(client, containers["alpha"].pk, query="mode=exec&cmd=sh&user=a%20b")
    assert "invalid user" in (await status(comm))["message"]


@run_async
async def test_session_relays_through_the_channel_layer(sessions, teams, host, containers):
    client = await sync_to_async(sessions)("developer")
    comm, _, _ = await connect(
        client, containers["alpha"].pk, query="mode=exec&cmd=sh+-l&cols=100&rows=30"
    )
    assert (await status(comm))["state"] == "starting"
    # Typed before the agent answered: kept and delivered once it is ready.
    await comm.send_to(text_data=json.dumps({"type": "input", "data": "early\n"}))
    op = await sync_to_async(Operation.objects.select_related("host").get)()
    assert op.kind == proto.OPERATION_KIND and op.state == "pending"
    assert op.params["command"] == ["sh", "-l"] and (op.params["cols"], op.params["rows"]) == (
        100,
        30,
    )
    allowed = await sync_to_async(
        lambda: AuditEvent.objects.get(action="container.exec", outcome="allowed").operation_id
    )()
    assert allowed == op.pk
    # Play the agent: announce a channel, read input, send output, then exit.
    layer = get_channel_layer()
    agent = await layer.new_channel("berth-term-agent.")
    await layer.group_send(
        proto.group_name(op.params["session"]), {"type": proto.READY, "channel": agent}
    )
    assert (await status(comm))["state"] == "ready"
    assert signed(await layer.receive(agent), op) == {"type": proto.INPUT, "data": b"early\n"}
    await comm.send_to(text_data=json.dumps({"type": "input", "data": "echo hi\r"}))
    assert signed(await layer.receive(agent), op) == {"type": proto.INPUT, "data": b"echo hi\r"}
    await comm.send_to(text_data=json.dumps({"type": "resize", "cols": 99999, "rows": 40}))
    assert signed(await layer.receive(agent), op) == {
        "type": proto.RESIZE,
        "cols": 1000,
        "rows": 40,
    }
    await layer.group_send(
        proto.group_name(op.params["session"]), {"type": proto.OUTPUT, "data": b"hi\r\n"}
    )
    assert await comm.receive_from(timeout=5) == b"hi\r\n"
    await layer.group_send(
        proto.group_name(op.params["session"]), {"type": proto.EXIT, "code": 0, "message": ""}
    )
    msg = await status(comm)
    assert msg["state"] == "exited" and msg["message"] == "exit code 0"
    await comm.wait()


@run_async
async def test_detach_tells_the_agent_to_close(sessions, containers):
    client = await sync_to_async(sessions)("admin")
    comm, _, _ = await connect(client, containers["alpha"].pk)
    await status(comm)
    op = await sync_to_async(Operation.objects.select_related("host").get)()
    layer = get_channel_layer()
    agent = await layer.new_channel("berth-term-agent.")
    await layer.group_send(
        proto.group_name(op.params["session"]), {"type": proto.READY, "channel": agent}
    )
    await status(comm)
    await comm.send_to(text_data=json.dumps({"type": "detach"}))
    assert (await status(comm))["state"] == "detached"
    await comm.wait()
    assert signed(await layer.receive(agent), op) == {"type": proto.CLOSE}


@run_async
async def test_tty_container_can_be_attached(sessions, teams, host):
    tty = await sync_to_async(make_container)(
        teams["alpha"], host, "td-tty", tty=True, observed_state="running"
    )
    client = await sync_to_async(sessions)("developer")
    comm, _, _ = await connect(client, tty.pk, query="mode=attach")
    assert (await status(comm))["state"] == "starting"
    op = await sync_to_async(Operation.objects.select_related("host").get)()
    assert op.params["mode"] == "attach" and op.params["command"] == []
    await comm.disconnect()


@run_async
async def test_the_asgi_app_serves_the_static_files():
    from asgiref.testing import ApplicationCommunicator

    for path, needle in (
        ("/static/berth/berth.css", b"--accent"),
        ("/static/vendor/htmx/htmx.min.js", b"htmx"),
    ):
        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": "GET",
            "path": path,
            "query_string": b"",
            "headers": [(b"host", b"127.0.0.1")],
            "server": ("127.0.0.1", 80),
            "client": ("127.0.0.1", 1),
        }
        comm = ApplicationCommunicator(_app(), scope)
        await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
        start = await comm.receive_output(10)
        body = b""
        while True:
            message = await comm.receive_output(10)
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        assert start["status"] == 200 and needle in body, path
