"""No user can stall a host for everyone (issue 20), shown on a real agent.

Ordering, never timing: a create by another team completes while four stops with a 40 s
grace period are still pending, and a heartbeat is stamped meanwhile; twenty creates complete
while a pull, held at a registry the test slows on purpose, is still running.
"""

import contextlib
import os
import socket
import threading
import uuid
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack, _random
from tests.registry.registry_helpers import (
    REGISTRY_BIN,
    SKOPEO,
    RegistryServer,
    make_oci_layout,
    skopeo,
)

pytestmark = [pytest.mark.e2e, pytest.mark.root]
OTHER_TEAM = "e2e-other"


@pytest.fixture(scope="module")
def fair(redis_url):
    """A stack with one short-lane worker whose agent beats every second."""
    if os.geteuid() != 0:
        pytest.skip("end-to-end tests run as root")
    base = Path(f"/tmp/berth-e2e-{_random(8)}")
    base.mkdir(mode=0o755)
    stack = Stack(base, redis_url)
    stack.env.update(BERTH_HEARTBEAT_SECONDS="1", BERTH_RECONCILE_SECONDS="2")
    try:
        stack.setup()
        stack.manage(
            "shell",
            "-c",
            f"from accounts.models import Team; Team.objects.create(name={OTHER_TEAM!r})",
        )
        # One short-lane worker: anything that waited in it (a stop's grace period, a pull on
        # the wrong lane) would hold up every other operation of the host.
        stack.start_worker(concurrency=1)
        stack.start_web()
        yield stack
    finally:
        stack.teardown()


def _create(stack, name, command, *, team, wait=60, spec=None):
    body = {
        "team": team,
        "host": stack.host,
        "start": True,
        "spec": {
            "image": "busybox",
            "name": name,
            "command": command,
            "network": {"mode": "none"},
            **(spec or {}),
        },
    }
    return stack.api("POST", f"containers/?wait={wait}", body)


def _op(stack, op_id) -> dict:
    _, op = stack.api("GET", f"operations/{op_id}/", expect=200)
    return op


def _remove(stack, ids):
    for cid in ids:
        with contextlib.suppress(Exception):
            stack.api("DELETE", f"containers/{cid}/?force=1&wait=60")


def test_stops_with_long_grace_do_not_stall_another_teams_create(fair):
    ids = []
    try:
        # busybox `sleep` as PID 1 has no SIGTERM handler: the kernel ignores the signal, so
        # each stop lasts its whole grace period. Before issue 20 each held a worker 40 s.
        for i in range(4):
            status, body = _create(fair, f"stall{i}", ["sleep", "1000"], team=fair.team)
            assert status == 200, body
            ids.append(body["container"]["id"])
        stops = []
        for cid in ids:
            status, body = fair.api("POST", f"containers/{cid}/stop/", {"timeout": 40})
            assert status == 202, body
            stops.append(body["operation"]["id"])
        # Every stop has signalled its container and returned its worker (parked, running).
        fair.wait_until(
            lambda: all((_op(fair, s)["result"] or {}).get("waiting") == "exit" for s in stops),
            30,
            "the four stops to be sent",
        )
        sent = fair.sql("SELECT datetime('now')")[0][0]

        status, body = _create(fair, "other", ["sleep", "1000"], team=OTHER_TEAM)
        assert status == 200, body
        ids.append(body["container"]["id"])
        assert body["operation"]["state"] == "succeeded", body
        # The create finished while all four stops were still pending.
        assert [_op(fair, s)["state"] for s in stops] == ["running"] * 4

        # A heartbeat stamped after the stops were sent, while they are still pending.
        fair.wait_until(
            lambda: fair.host_row()["last_heartbeat"].replace("T", " ")[:19] > sent,
            30,
            "a heartbeat while the stops wait",
        )
        assert fair.host_row()["state"] == "up"
        assert [_op(fair, s)["state"] for s in stops] == ["running"] * 4
    finally:
        _remove(fair, ids)


def test_the_shim_kills_after_the_grace_period_and_the_stop_completes(fair):
    status, body = _create(fair, "grace", ["sleep", "1000"], team=fair.team)
    assert status == 200, body
    cid = body["container"]["id"]
    try:
        status, body = fair.api("POST", f"containers/{cid}/stop/?wait=60", {"timeout": 1})
        assert status == 200, body
        assert body["operation"]["state"] == "succeeded", body
        _, row = fair.api("GET", f"containers/{cid}/", expect=200)
        assert row["observed_state"] == "stopped"
        assert row["exit_code"] == 137  # SIGKILL: the sleep ignored SIGTERM
        # The restart path parks the same way, then starts it again.
        status, body = fair.api("POST", f"containers/{cid}/restart/?wait=60", {"timeout": 1})
        assert status == 200 and body["operation"]["state"] == "succeeded", body
        _, row = fair.api("GET", f"containers/{cid}/", expect=200)
        assert row["observed_state"] == "running"
    finally:
        _remove(fair, [cid])


def test_stop_timeouts_are_capped_by_policy(fair):
    status, body = _create(fair, "cap", ["sleep", "1000"], team=fair.team)
    assert status == 200, body
    cid = body["container"]["id"]
    try:
        status, body = fair.api("POST", f"containers/{cid}/stop/", {"timeout": 61})
        assert status == 400, body
        assert "61 s asked, the maximum for your role is 60 s" in str(body)
        status, body = _create(
            fair, "capspec", ["true"], team=fair.team, spec={"stop_timeout": 600}
        )
        assert status in (400, 403), body
        assert "stop_timeout: 600 s asked" in str(body)
    finally:
        _remove(fair, [cid])


class HeldProxy:
    """A TCP proxy to a registry that holds every answer until release(): a slow registry."""

    def __init__(self, upstream_port: int):
        self.upstream = ("127.0.0.1", upstream_port)
        self.gate = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, src, dst, held):
        with contextlib.suppress(OSError):
            while True:
                data = src.recv(65536)
                if held:
                    self.gate.wait()
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)

    def release(self):
        self.gate.set()

    def close(self):
        self.gate.set()
        self.listener.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()


@pytest.mark.skipif(
    REGISTRY_BIN is None or SKOPEO is None, reason="apt-get install docker-registry skopeo"
)
def test_a_long_pull_does_not_delay_twenty_creates(fair, tmp_path):
    (tmp_path / "registry").mkdir()
    registry = RegistryServer(tmp_path / "registry")
    proxy = HeldProxy(registry.port)
    ids = []
    try:
        layout = tmp_path / "layout"
        make_oci_layout(layout, [{"big.bin": os.urandom(256 * 1024)}])
        skopeo(
            "copy",
            "--dest-tls-verify=false",
            f"oci:{layout}:latest",
            f"docker://{registry.host}/slow/app:1",
        )
        ref = f"127.0.0.1:{proxy.port}/slow/app:1"
        status, body = fair.api("POST", "images/pull/", {"ref": ref, "host": fair.host})
        assert status == 202, body
        pull = body["operation"]["id"]
        fair.wait_until(lambda: _op(fair, pull)["state"] == "running", 30, "the pull to start")

        for i in range(20):
            status, body = _create(fair, f"c{i}-{uuid.uuid4().hex[:4]}", ["true"], team=OTHER_TEAM)
            assert status == 200, body
            ids.append(body["container"]["id"])
            assert body["operation"]["state"] == "succeeded", body
        # All twenty finished while the pull still waits for its registry.
        assert _op(fair, pull)["state"] == "running"

        proxy.release()
        fair.wait_until(lambda: _op(fair, pull)["state"] != "running", 60, "the pull to end")
        assert _op(fair, pull)["state"] == "succeeded", _op(fair, pull)
    finally:
        proxy.close()
        _remove(fair, ids)
        registry.stop()
