"""gunicorn settings for Berth's production WebSocket server: uvicorn workers (ASGI, Channels)
for the web terminal, on a port of their own with the same certificate as the HTTP server.

    gunicorn -c deploy/gunicorn-ws.conf.py config.asgi:application

Browsers open the terminal's WebSocket at the page's host name on BERTH_WS_PORT (default: the
port of BERTH_WS_BIND): cookies are not bound to a port, so the session goes along, and the
Origin check (ALLOWED_HOSTS) is the same. Behind a proxy that routes /ws/ to BERTH_WS_BIND, set
BERTH_WS_PORT=0: the page's own origin. Plain HTTP requests to this server are answered too
(config.asgi), but nothing sends them here.

Environment: BERTH_WS_BIND (BERTH_BIND's host, its port + 1: 127.0.0.1:8444), BERTH_WS_WORKERS
(1: a terminal is mostly waiting, and the Redis channel layer joins workers anyway),
BERTH_TLS_CERT and BERTH_TLS_KEY as for the HTTP server, BERTH_DATA_DIR.
"""

import os
import shutil
from pathlib import Path


def default_ws_bind(http_bind: str) -> str:
    """BERTH_BIND's host with its port + 1."""
    host, _, port = http_bind.rpartition(":")
    return f"{host}:{int(port) + 1}"


bind = [
    os.environ.get("BERTH_WS_BIND")
    or default_ws_bind(os.environ.get("BERTH_BIND", "127.0.0.1:8443"))
]
workers = int(os.environ.get("BERTH_WS_WORKERS") or 1)
worker_class = "uvicorn_worker.UvicornWorker"
# Django and the consumers imported before the fork: the first terminal of a new worker does not
# wait for them. A code change needs a restart.
preload_app = True
# Web terminals keep a WebSocket open; a graceful restart waits this long for them.
graceful_timeout = 30
timeout = 120
keepalive = 30
certfile = os.environ.get("BERTH_TLS_CERT") or None
keyfile = os.environ.get("BERTH_TLS_KEY") or None
accesslog = None
errorlog = "-"

# Its own metrics directory, whatever the environment says: the HTTP server's on_starting
# empties that one.
_data = Path(os.environ.get("BERTH_DATA_DIR") or Path(__file__).resolve().parents[1] / "var")
_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_data / "run" / "prometheus-ws")


def on_starting(server):
    """Start from an empty metrics directory."""
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, mode=0o700, exist_ok=True)


def child_exit(server, worker):
    """A worker that exited: its live gauges go."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
