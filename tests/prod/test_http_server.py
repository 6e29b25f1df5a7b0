"""The production HTTP server's launcher (config/http_server.py): its settings refused with a
clear message before anything starts, dead workers' live gauges removed, and whole bodies
handed to granian as lists."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "platform"))

from config import http_server  # noqa: E402


def test_bind_address_forms():
    assert http_server.bind_address("127.0.0.1:8443") == ("127.0.0.1", 8443)
    assert http_server.bind_address("[::1]:443") == ("::1", 443)
    for bad in ("8443", "host:", ":8443", "host:port", "host:70000", "host:0"):
        with pytest.raises(SystemExit, match="BERTH_BIND must be host:port"):
            http_server.bind_address(bad)


def launch(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """`python -m config.http_server` with these settings (none of which lets it serve)."""
    environ = {**os.environ, "PYTHONPATH": f"{REPO / 'platform'}:{REPO}",
               "BERTH_DATA_DIR": str(tmp_path), "BERTH_BIND": "127.0.0.1:1", **env}  # fmt: skip
    environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "config.http_server"], cwd=REPO, env=environ,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BERTH_TLS_CERT": "/etc/hostname"}, "BERTH_TLS_CERT and BERTH_TLS_KEY go together"),
        ({"BERTH_TLS_CERT": "/etc/hostname", "BERTH_TLS_KEY": "/nonexistent/key.pem"},
         "cannot read /nonexistent/key.pem"),
        ({"BERTH_BIND": "no-port"}, "BERTH_BIND must be host:port"),
    ],
)  # fmt: skip
def test_bad_settings_refused_before_anything_starts(tmp_path, env, message):
    done = launch(tmp_path, **env)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()  # not even the metrics directory


def test_dead_workers_live_gauges_are_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    gone = subprocess.Popen(["true"])
    gone.wait()
    for name in (f"gauge_livesum_{gone.pid}.db", f"gauge_liveall_{os.getpid()}.db",
                 f"counter_{gone.pid}.db"):  # fmt: skip
        (tmp_path / name).write_bytes(b"")
    http_server.forget_dead_workers()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([f"gauge_liveall_{os.getpid()}.db", f"counter_{gone.pid}.db"])


def test_whole_bodies_answers_a_list_and_closes_the_response(db):
    from django.core.signals import request_finished
    from django.http import HttpResponse, StreamingHttpResponse

    finished = []
    plain = HttpResponse(b'{"count": 0}', content_type="application/json")
    streaming = StreamingHttpResponse(iter([b"a", b"b"]))
    answers = iter([plain, streaming])
    app = http_server.whole_bodies(lambda environ, start_response: next(answers))

    def note(**_kwargs):
        finished.append(True)

    request_finished.connect(note)
    try:
        # Granian sends a list from the request's thread, at once (granian/wsgi.py).
        assert app({}, None) == [b'{"count": 0}']
        assert finished == [True]  # closed, as the server would after sending it
        assert app({}, None) is streaming  # a stream is the server's to iterate and close
        assert finished == [True]
    finally:
        request_finished.disconnect(note)


def test_whole_bodies_sends_after_work_off_the_answer(db):
    """The host's deletion of a removed container (AfterResponse) never holds the answer back:
    it runs on the worker's own thread once the list is returned."""
    import threading

    from django.http import HttpResponse

    from operations.dispatch import AfterResponse

    answered, ran = threading.Event(), []

    def send():
        ran.append((answered.wait(10), threading.current_thread().name))

    def view(environ, start_response):
        later = AfterResponse()
        later.calls.append(send)
        return later.attach(HttpResponse(b"{}"))

    app = http_server.whole_bodies(view, after=http_server.AfterAnswers())
    assert app({}, None) == [b"{}"]
    answered.set()
    deadline = time.monotonic() + 10
    while not ran and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ran == [(True, "berth-after-answers")]
