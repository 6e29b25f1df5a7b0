"""The production HTTP server's launcher (config/http_server.py): its settings refused with a
clear message before anything starts, and dead workers' live gauges removed."""

import os
import subprocess
import sys
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
