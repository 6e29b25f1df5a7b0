"""gunicorn settings for Berth's production HTTP server: threaded WSGI workers (gthread) for
the REST API, the dashboard and static files, HTTPS with the given certificate, metrics added up
across workers. The web terminal's WebSockets are the other server's (deploy/gunicorn-ws.conf.py).

    gunicorn -c deploy/gunicorn.conf.py config.wsgi:application

Why WSGI for HTTP (issue 15, docs/benchmarks.md): under ASGI, Django runs each request's
synchronous part in a new thread and hands it back to the event loop twice, about 5 ms of CPU
per request; a gthread worker runs it on one of its kept threads, with nothing between.

Environment: BERTH_BIND (127.0.0.1:8443), BERTH_WORKERS (one per core, at least 2),
BERTH_TLS_CERT and BERTH_TLS_KEY (PEM files; without them, plain HTTP for a proxy in front),
BERTH_DATA_DIR (the multiprocess metrics directory lives under its run/).
BERTH_HTTP_CONCURRENCY: the threads of a worker, i.e. its requests inside Django at once
(default: the database pool's size, BERTH_DB_POOL_SIZE, 8, as in config.settings.prod); the
other connections wait in the worker's poll loop, costing nothing.
"""

import os
import shutil
from pathlib import Path

bind = [os.environ.get("BERTH_BIND", "127.0.0.1:8443")]
# One per core (at least 2): requests are CPU-bound Python, and more processes than cores only
# add switching (measured in bench/prod_load.py).
workers = int(os.environ.get("BERTH_WORKERS") or max(2, os.cpu_count() or 1))
worker_class = "gthread"
# Django is imported once, before the workers fork: every worker answers from its first moment.
# Loaded in each worker instead, the first one up took every kept-alive connection opened
# while the other was still importing, and kept them (one core busy, one idle: measured in
# bench/prod_load.py). A code change needs a restart, not a HUP.
preload_app = True
threads = max(
    1,
    int(os.environ.get("BERTH_HTTP_CONCURRENCY") or os.environ.get("BERTH_DB_POOL_SIZE") or 8),
)
# Each worker's database pool opens all its connections at once (post_worker_init below):
# its threads use them all under load (config.settings.prod reads this before the app loads).
os.environ.setdefault("BERTH_DB_POOL_MIN", str(threads))
# Kept-alive connections of API clients and browsers (one TLS handshake, not one per request)
# wait in the worker's poll loop, not in a thread.
worker_connections = 1000
graceful_timeout = 30
timeout = 120
keepalive = 30
certfile = os.environ.get("BERTH_TLS_CERT") or None
keyfile = os.environ.get("BERTH_TLS_KEY") or None
accesslog = None
errorlog = "-"

# Each worker writes its counters to its own files here; a scrape of any worker adds them up.
_data = Path(os.environ.get("BERTH_DATA_DIR") or Path(__file__).resolve().parents[1] / "var")
_metrics_dir = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_data / "run" / "prometheus"))


_tls_contexts: dict[int, object] = {}  # this process's TLS context, by pid


def ssl_context(config, default_ssl_context_factory):
    """One TLS context per worker process for all its connections. gunicorn's default builds
    a new one for every connection, reading and parsing the certificate and key each time:
    1.2 ms of CPU here, a third of a core when 250 clients connect within a second (the
    slowest answers of a cold server, issue 15). Kept by pid: a worker forked after a HUP
    reads a renewed certificate."""
    context = _tls_contexts.get(os.getpid())
    if context is None:
        context = _tls_contexts[os.getpid()] = default_ssl_context_factory()
    return context


def on_starting(server):
    """Start from an empty metrics directory: counters of a previous run are not this run's."""
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, mode=0o700, exist_ok=True)


def pre_fork(server, worker):
    """Before a worker forks off the preloaded master: what Django's import left is collected
    once and frozen (gc.freeze), so the workers' collections never walk those hundreds of
    thousands of objects again (a full collection of them is tens of milliseconds, on a
    request's path) nor touch their pages (copy-on-write keeps them shared)."""
    import gc

    gc.collect()
    gc.freeze()


def child_exit(server, worker):
    """A worker that exited: its live gauges go, its counters stay in the sum."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):
    """The worker's database pool opened and filled before its first request, so that its
    threads' first requests do not each wait for a new connection (config/warm.py did the rest
    in the master). A database that is down here only logs: the pool is dropped, a request
    makes a new one, and answers say what is wrong until the database is back."""
    from django.db import connection

    pool = getattr(connection, "pool", None)  # PostgreSQL's (config.settings.prod)
    try:
        if pool is not None:
            pool.open(wait=True, timeout=10)  # all its connections (min_size) open
        else:
            connection.ensure_connection()
    except Exception as err:  # noqa: BLE001 (any driver's error; the worker must still start)
        worker.log.warning("database not reachable at worker start: %s", err)
        if pool is not None:
            connection.close_pool()  # a timed-out pool is closed for good
    finally:
        connection.close()
