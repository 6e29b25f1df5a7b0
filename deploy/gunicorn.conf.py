"""gunicorn settings for Berth's production server: uvicorn workers (ASGI: HTTP and the web
terminal's WebSockets), HTTPS with the given certificate, metrics added up across workers.

    gunicorn -c deploy/gunicorn.conf.py config.asgi:application

Environment: BERTH_BIND (127.0.0.1:8443), BERTH_WORKERS (one per core, at least 2),
BERTH_TLS_CERT and BERTH_TLS_KEY (PEM files; without them, plain HTTP for a proxy in front),
BERTH_DATA_DIR (the multiprocess metrics directory lives under its run/). In
config.settings.prod, BERTH_HTTP_CONCURRENCY bounds the requests of a worker inside Django at
once (default: the database pool's size, BERTH_DB_POOL_SIZE, 8; config/asgi_limit.py).
"""

import os
import shutil
from pathlib import Path

bind = [os.environ.get("BERTH_BIND", "127.0.0.1:8443")]
# One per core (at least 2): requests are CPU-bound Python, and more processes than cores only
# add switching (measured in bench/prod_load.py).
workers = int(os.environ.get("BERTH_WORKERS") or max(2, os.cpu_count() or 1))
worker_class = "uvicorn_worker.UvicornWorker"
# Web terminals keep a WebSocket open; a graceful restart waits this long for them.
graceful_timeout = 30
timeout = 120
# API clients and browsers reuse connections (one TLS handshake, not one per request).
keepalive = 30
certfile = os.environ.get("BERTH_TLS_CERT") or None
keyfile = os.environ.get("BERTH_TLS_KEY") or None
accesslog = None
errorlog = "-"

# Each worker writes its counters to its own files here; a scrape of any worker adds them up.
_data = Path(os.environ.get("BERTH_DATA_DIR") or Path(__file__).resolve().parents[1] / "var")
_metrics_dir = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_data / "run" / "prometheus"))


def on_starting(server):
    """Start from an empty metrics directory: counters of a previous run are not this run's."""
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, mode=0o700, exist_ok=True)


def child_exit(server, worker):
    """A worker that exited: its live gauges go, its counters stay in the sum."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
