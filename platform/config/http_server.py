"""Berth's production HTTP server: granian running Django's WSGI application in worker
processes, HTTPS with the given certificate, metrics added up across workers. The web
terminal's WebSockets are the other server's (deploy/gunicorn-ws.conf.py).

    cd platform && python -m config.http_server

Why granian (issue 15, docs/benchmarks.md "Session 12" and "Session 13"): it parses HTTP,
keeps the connections and terminates TLS in Rust, outside the GIL, and hands each request to
one of a worker's kept threads. The same load cost 2.4 ms of CPU per request against
gunicorn's 2.8, and the container list's p99 went under 200 ms. Why WSGI and not ASGI: under
ASGI, Django runs each request's synchronous part in a new thread and hands it back to the
event loop twice, about 5 ms of CPU per request.

Environment: BERTH_BIND (127.0.0.1:8443), BERTH_WORKERS (one per core, at least 2),
BERTH_TLS_CERT and BERTH_TLS_KEY (PEM files, any key format openssl writes; without them,
plain HTTP for a proxy in front), BERTH_DATA_DIR (the multiprocess metrics directory lives
under its run/). BERTH_HTTP_CONCURRENCY: the threads of a worker, i.e. its requests inside
Django at once (default: the database pool's size, BERTH_DB_POOL_SIZE, 8, as in
config.settings.prod); the other connections wait in granian's Rust side, costing nothing.

Signals: TERM or INT stop (requests in progress finish, up to 30 s); HUP starts new workers,
which read a renewed certificate (the code stays the one loaded at start: a code change needs
a restart).
"""

import gc
import logging
import os
import shutil
import sys
from pathlib import Path

log = logging.getLogger("berth.http")

TARGET = "config.wsgi:application"


def bind_address(value: str) -> tuple[str, int]:
    """`host:port` (or `[v6]:port`) as granian takes it; a clear error for anything else."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SystemExit(f"BERTH_BIND must be host:port, not {value!r}")
    return host.strip("[]"), int(port)


def worker_count() -> int:
    """One per core, at least 2: requests are CPU-bound Python, and more processes than cores
    only add switching (measured in bench/prod_load.py)."""
    return int(os.environ.get("BERTH_WORKERS") or max(2, os.cpu_count() or 1))


def thread_count() -> int:
    """A worker's threads inside Django: as many as its database pool has connections."""
    value = os.environ.get("BERTH_HTTP_CONCURRENCY") or os.environ.get("BERTH_DB_POOL_SIZE")
    return max(1, int(value or 8))


def metrics_directory() -> Path:
    """Where each worker writes its counters (a scrape of any worker adds them up)."""
    data = Path(os.environ.get("BERTH_DATA_DIR") or Path(__file__).resolve().parents[2] / "var")
    return Path(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(data / "run" / "prometheus")))


def fresh_metrics_directory() -> None:
    """An empty metrics directory: counters of a previous run are not this run's."""
    directory = metrics_directory()
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)


def preload() -> None:
    """Django, the URLconf, the templates and the static manifest loaded in the main process
    (config.wsgi imports config/warm.py), before the workers fork: each worker answers from its
    first moment. What the import left is then collected once and frozen (gc.freeze), so the
    workers' collections never walk those hundreds of thousands of objects again (tens of
    milliseconds on a request's path) nor touch their pages (copy-on-write keeps them
    shared). No database connection is opened here: none may cross the fork."""
    import config.wsgi  # noqa: F401 (the import is the point)

    gc.collect()
    gc.freeze()


def open_database_pool() -> None:
    """The worker's database pool opened and filled before its first request, so that its
    threads' first requests do not each wait for a new connection. A database that is down
    here only logs: the pool is dropped, a request makes a new one, and answers say what is
    wrong until the database is back."""
    from django.db import connection

    pool = getattr(connection, "pool", None)  # PostgreSQL's (config.settings.prod)
    try:
        if pool is not None:
            pool.open(wait=True, timeout=10)  # all its connections (min_size) open
        else:
            connection.ensure_connection()
    except Exception as err:  # noqa: BLE001 (any driver's error; the worker must still start)
        log.warning("database not reachable at worker start: %s", err)
        if pool is not None:
            connection.close_pool()  # a timed-out pool is closed for good
    finally:
        connection.close()


def forget_dead_workers() -> None:
    """Live gauges of workers that are gone (killed, or before a HUP) leave the sum; their
    counters stay in it."""
    from prometheus_client import multiprocess

    for path in metrics_directory().glob("gauge_live*_*.db"):
        pid = path.stem.rpartition("_")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            multiprocess.mark_process_dead(int(pid))


def load_in_worker(target: str):
    """Run by granian in each new worker (forked off the preloaded main process): returns the
    application granian calls."""
    forget_dead_workers()
    open_database_pool()
    module, _, name = target.partition(":")
    return getattr(sys.modules[module], name)


def serve() -> None:
    """Start granian with Berth's settings; returns when it stops."""
    from granian.constants import Interfaces, SSLProtocols
    from granian.server import Server

    host, port = bind_address(os.environ.get("BERTH_BIND", "127.0.0.1:8443"))
    threads = thread_count()
    # Each worker's pool opens all its connections at start: its threads use them all under
    # load (config.settings.prod reads this when the application loads).
    os.environ.setdefault("BERTH_DB_POOL_MIN", str(threads))
    # On SQLite each of a worker's threads keeps its connection between requests (granian's
    # threads live on): no connect and close around every request, 30 us of a 0.55 ms page
    # of 10 in the process (issue 19). A thread that granian ends takes its connection along.
    os.environ.setdefault("BERTH_SQLITE_CONN_MAX_AGE", "60")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.prod")
    cert, key = os.environ.get("BERTH_TLS_CERT"), os.environ.get("BERTH_TLS_KEY")
    if bool(cert) != bool(key):
        raise SystemExit("BERTH_TLS_CERT and BERTH_TLS_KEY go together")
    for path in filter(None, (cert, key)):
        if not os.access(path, os.R_OK):
            raise SystemExit(f"cannot read {path}")
    fresh_metrics_directory()
    preload()
    server = Server(
        TARGET,
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=worker_count(),
        blocking_threads=threads,
        websockets=False,  # WSGI has none: the terminal's are deploy/gunicorn-ws.conf.py's
        ssl_cert=Path(cert) if cert else None,
        ssl_key=Path(key) if key else None,
        # TLS 1.2 still: API clients and scrapers on older systems speak no 1.3.
        ssl_protocol_min=SSLProtocols.tls12,
        respawn_failed_workers=True,
        workers_kill_timeout=30,
        process_name="berth-web",
    )
    server.serve(target_loader=load_in_worker)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(name)s: %(message)s")
    serve()
