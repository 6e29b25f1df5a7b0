"""The production server (scripts/berth-up --prod: granian with threaded WSGI workers for HTTP,
a uvicorn worker for WebSockets on its own port) starts several workers and serves the API,
static files (WhiteNoise) and a WebSocket over HTTPS."""

import json
import os
import re
import shutil
import signal
import ssl
import time

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.prod.prod_server import ProdServer, make_certificate

# A session for the admin, made the way Django's login does, printed as its cookie value.
SESSION = (
    "from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY; "
    "from django.contrib.sessions.backends.db import SessionStore; "
    "from accounts.models import User; u = User.objects.get(username='admin'); "
    "s = SessionStore(); s[SESSION_KEY] = str(u.pk); "
    "s[BACKEND_SESSION_KEY] = 'django.contrib.auth.backends.ModelBackend'; "
    "s[HASH_SESSION_KEY] = u.get_session_auth_hash(); s.create(); print(s.session_key)"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory, redis_url):
    served = ProdServer(tmp_path_factory.mktemp("prod"), redis_url, workers=2)
    try:
        served.prepare()
        served.start()
        yield served
    finally:
        served.stop()


def test_several_workers(server):
    assert len(server.worker_pids()) == 2
    assert "Started worker-2" in server.log()
    assert "Application startup complete" in server.ws_log()


def test_api_over_https(server):
    status, _, body = server.get("/api/v1/containers/", {"Authorization": f"Bearer {server.token}"})
    assert status == 200, body
    assert json.loads(body)["count"] == 0
    status, _, _ = server.get("/api/v1/containers/")
    assert status in (401, 403)
    # Production settings: HSTS on every answer, no debug page for a missing one.
    status, headers, body = server.get("/no-such-page/")
    assert status == 404 and b"Traceback" not in body
    assert "max-age" in (headers.get("Strict-Transport-Security") or "")


def test_static_files_by_whitenoise(server):
    status, headers, body = server.get("/static/berth/berth.css")
    assert status == 200 and body
    assert "max-age" in headers.get("Cache-Control", "")
    status, headers, _ = server.get("/static/berth/berth.css", {"Accept-Encoding": "gzip"})
    assert status == 200 and headers.get("Content-Encoding") == "gzip"
    assert server.get("/static/berth/nothing-here.css")[0] == 404
    # Pages name each asset by its content's hash, served as immutable: a browser fetches it
    # once, and a new release's file is another name.
    status, _, page = server.get("/login/")
    assert status == 200, page
    hashed = re.search(rb"/static/berth/berth\.[0-9a-f]{12}\.css", page)
    assert hashed, page[:500]
    status, headers, _ = server.get(hashed.group().decode())
    assert status == 200 and "immutable" in headers.get("Cache-Control", "")


def test_websocket_over_https(server):
    origin = server.base_url.replace("127.0.0.1", "localhost")
    url = server.ws_base_url + "/ws/containers/999999/terminal/"
    # Without a session: accepted, told to log in, closed.
    with connect(url, ssl=server.tls, origin=origin, open_timeout=20) as ws:
        assert json.loads(ws.recv(timeout=20))["message"] == "log in first"
    # With the admin's session cookie: the consumer looks the container up (through the
    # gate) and says it is not there: sessions, Channels and the Redis layer work per worker.
    session = server.manage("shell", "-c", SESSION).strip().splitlines()[-1]
    with connect(
        url,
        ssl=server.tls,
        origin=origin,
        additional_headers={"Cookie": f"sessionid={session}"},
        open_timeout=20,
    ) as ws:
        message = json.loads(ws.recv(timeout=20))
    assert message["state"] == "error"
    assert re.search(r"not found|no container", message["message"]), message


def test_foreign_origin_websocket_refused(server):
    url = server.ws_base_url + "/ws/containers/1/terminal/"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, ssl=server.tls, origin="https://evil.example", open_timeout=20)
    assert refused.value.response.status_code == 403


def test_a_killed_worker_is_replaced(server):
    """A worker that dies (here: SIGKILL) is started again; the server keeps answering."""
    before = set(server.worker_pids())
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = set(server.worker_pids())
        if len(now) == 2 and victim not in now:
            break
        time.sleep(0.2)
    assert victim not in now and len(now) == 2, (before, now, server.log()[-2000:])
    status, _, body = server.get("/api/v1/containers/", {"Authorization": f"Bearer {server.token}"})
    assert status == 200, body


def test_hup_starts_new_workers_that_serve_a_renewed_certificate(server):
    """`systemctl reload berth-web` (SIGHUP): new workers, which read the certificate again."""
    before = set(server.worker_pids())
    (server.base / "renewed").mkdir()
    renewed_cert, renewed_key = make_certificate(server.base / "renewed")
    shutil.copyfile(renewed_cert, server.cert)
    shutil.copyfile(renewed_key, server.key)
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = set(server.worker_pids())
        if len(now) == 2 and not now & before:
            break
        time.sleep(0.2)
    assert len(now) == 2 and not now & before, (before, now, server.log()[-2000:])
    server.tls = ssl.create_default_context(cafile=str(renewed_cert))
    status, _, body = server.get("/api/v1/containers/", {"Authorization": f"Bearer {server.token}"})
    assert status == 200, body
