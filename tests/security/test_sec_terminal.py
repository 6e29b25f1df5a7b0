"""The terminal WebSocket: refusals look like missing containers, and every refusal is audited."""

import json

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from audit.models import AuditEvent
from operations.models import Operation

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def keep_test_connection(monkeypatch):
    """channels closes "old" connections around database calls; keep the test's own."""
    monkeypatch.setattr("channels.db.close_old_connections", lambda: None)


@pytest.fixture
def terminal(page):
    """terminal("developer", pk, query) -> (status message, close code) of one socket."""

    def open_socket(name, pk, query="mode=exec&cmd=/bin/sh"):
        from config.asgi import application

        client = page(name)
        headers = [
            (b"origin", b"http://127.0.0.1"),
            (b"host", b"127.0.0.1"),
            (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
        ]

        async def run():
            comm = WebsocketCommunicator(
                application, f"/ws/containers/{pk}/terminal/?{query}", headers=headers
            )
            connected, _ = await comm.connect()
            assert connected
            message = json.loads(await comm.receive_from(timeout=5))
            code = None
            if message["state"] == "error":
                code = (await comm.receive_output(timeout=5)).get("code")
            await comm.disconnect()
            return message, code

        return async_to_sync(run)()

    return open_socket


def _denied(action, pk):
    return AuditEvent.objects.filter(action=action, outcome="denied", object_id=str(pk))


def test_another_teams_container_looks_missing_and_is_audited(terminal, containers):
    pk = containers["beta"].pk
    for mode in ("exec", "attach"):
        message, code = terminal("developer", pk, f"mode={mode}&cmd=sh")
        assert message["state"] == "error" and "not found" in message["message"]
        assert code == 4404
        assert _denied(f"container.{mode}", pk).exists()
    assert not Operation.objects.exists()


def test_viewer_and_rando_are_refused_and_audited(terminal, containers):
    pk = containers["alpha"].pk
    message, code = terminal("viewer", pk)
    assert message["state"] == "error" and code == 4403
    assert _denied("container.exec", pk).filter(actor="ts-viewer").exists()
    message, code = terminal("rando", pk)
    assert message["state"] == "error" and code == 4404  # rando cannot even see it
    assert AuditEvent.objects.filter(actor="ts-rando", outcome="denied").exists()
    assert not Operation.objects.exists()


@pytest.mark.parametrize("user", ["root", "0", "00", "0:0", "000:1000"])
def test_exec_as_root_into_another_teams_container_is_refused(terminal, containers, user):
    message, code = terminal("operator", containers["alpha"].pk, f"mode=exec&cmd=sh&user={user}")
    assert message["state"] == "error" and "container.exec_root" in message["message"]
    assert code == 4403
    assert _denied("container.exec", containers["alpha"].pk).exists()
    assert not Operation.objects.exists()


@pytest.fixture
def tty_containers(teams, host):
    """Running TTY containers of alpha: one as root (the default), one as uid 1000."""
    from tests.platform.factories import make_container

    rows = {}
    for name, user in (("root", None), ("plain", "1000")):
        row = make_container(
            teams["alpha"],
            host,
            f"ts-tty-{name}",
            observed_state="running",
            desired_state="running",
        )
        row.spec = row.spec | {"tty": True, "stdin_open": True} | ({"user": user} if user else {})
        row.save()
        rows[name] = row
    return rows


def test_attach_to_a_root_tty_of_another_team_needs_exec_root(terminal, tty_containers):
    # Attaching to another team's root shell is exec as root under another name.
    message, code = terminal("operator", tty_containers["root"].pk, "mode=attach")
    assert message["state"] == "error" and "container.exec_root" in message["message"]
    assert code == 4403
    assert _denied("container.attach", tty_containers["root"].pk).exists()
    assert not Operation.objects.exists()


def test_attach_to_a_plain_user_tty_and_own_team_root_tty_is_allowed(terminal, tty_containers):
    message, _ = terminal("operator", tty_containers["plain"].pk, "mode=attach")
    assert message["state"] == "starting", message
    message, _ = terminal("developer", tty_containers["root"].pk, "mode=attach")
    assert message["state"] == "starting", message
