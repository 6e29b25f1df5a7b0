#!/usr/bin/env python
"""The production server under load, next to the development server, in one run (issue 15).

A throwaway Berth (tests/prod/prod_server.py: private Redis, SQLite, 500 container rows in one
team, an admin token and session) is served twice on loopback, one after the other, against
the same database:
  dev   `manage.py runserver` with config.settings.dev (what `scripts/berth-up` runs)
  prod  granian with threaded WSGI workers (config/http_server.py), HTTPS, config.settings.prod, WhiteNoise (`--prod`;
        its WebSocket server runs beside it, idle here)
Each gets the same bounded load for --seconds (default 60) from one asyncio process (h11 on
kept-alive connections, uvloop when present):
  --api-clients (200) API clients, each `GET /api/v1/containers/` (a page of 50 of the 500
      rows) with a bearer token, then a think time of 0.5-1.5 s;
  --browsers (50) browsers, each a dashboard page load (`GET /containers/` with the session
      cookie, then every same-origin script and stylesheet the page names), then 2-4 s;
      with --browser-cache each browser keeps an asset for its Cache-Control max-age, as a
      browser does (the production server's hashed assets are immutable: fetched once).
A client waits for its answer before the next request (closed loop), so a saturated server
shows up as fewer requests per second and higher latency, never as an unbounded backlog.
Reported per server: requests per second, p50/p99 latency of the list and of page loads, the
p99 again without the run's first 5 s (every client opens its connection then: a cold start,
not the steady load) and the slowest answer of each second, errors (any non-2xx/3xx, timeout
or connection failure); then prod/dev ratios.

    .venv/bin/python bench/prod_load.py [--seconds 60] [--api-clients 200] [--browsers 50]
        [--containers 500] [--workers N] [--think F] [--browser-cache] [--json out.json]
"""

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import resource
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import h11

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.prod.prod_server import PY, ProdServer, free_port  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
from served_berth import Postgres  # noqa: E402

REQUEST_TIMEOUT = 10.0
WARM_UP = 5.0  # seconds at the start of a run left out of "p99_after_warm_up_ms"
THINK = [1.0]  # --think: scales every think time (0: back to back)
BROWSER_CACHE = [False]  # --browser-cache: an asset is fetched again only once its max-age ran out
ROWS = """
from accounts.models import Team
from containers.models import Container
from hosts.models import Host
team, _ = Team.objects.get_or_create(name="bench")
host = Host.objects.get(name={host!r})
Host.objects.filter(pk=host.pk).update(state="up")
states = ["running", "stopped", "created", "paused"]
Container.objects.bulk_create([
    Container(team=team, host=host, name=f"load-{{i:04d}}", image="busybox",
              spec={{"image": "busybox", "name": f"load-{{i:04d}}", "labels": {{}}}},
              observed_state=states[i % 4], desired_state="running")
    for i in range({n})
])
"""
SESSION = (
    "from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY; "
    "from django.contrib.sessions.backends.db import SessionStore; "
    "from accounts.models import User; u = User.objects.get(username='admin'); "
    "s = SessionStore(); s[SESSION_KEY] = str(u.pk); "
    "s[BACKEND_SESSION_KEY] = 'django.contrib.auth.backends.ModelBackend'; "
    "s[HASH_SESSION_KEY] = u.get_session_auth_hash(); s.create(); print(s.session_key)"
)


class Connection:
    """One kept-alive HTTP/1.1 connection (h11), reopened after an error or a close."""

    def __init__(self, base: str, tls: ssl.SSLContext | None):
        parts = urlsplit(base)
        self.host, self.port, self.tls = parts.hostname, parts.port, tls
        self.reader = self.writer = None
        self.conn = None
        self.max_age = 0  # the last answer's Cache-Control max-age (0: none)

    async def _open(self):
        self.reader, self.writer = await asyncio.open_connection(
            self.host, self.port, ssl=self.tls, server_hostname=self.host if self.tls else None
        )
        self.conn = h11.Connection(h11.CLIENT)

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = self.conn = None

    async def get(self, path: str, headers: dict) -> int:
        """GET `path`; returns the status once the whole body arrived. A kept-alive connection
        the server closed while idle is reopened and the GET sent again, as browsers do."""
        reused = self.conn is not None and self.conn.our_state is h11.IDLE
        if not reused:
            self.close()
            await self._open()
        try:
            return await self._exchange(path, headers)
        except (ConnectionError, h11.RemoteProtocolError):
            if not reused:
                raise
            self.close()
            await self._open()
            return await self._exchange(path, headers)

    async def _exchange(self, path: str, headers: dict) -> int:
        hdrs = [("Host", f"{self.host}:{self.port}"), *headers.items()]
        self.writer.write(self.conn.send(h11.Request(method="GET", target=path, headers=hdrs)))
        self.writer.write(self.conn.send(h11.EndOfMessage()))
        await self.writer.drain()
        status = 0
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                data = await self.reader.read(65536)
                if not data and status == 0:
                    raise ConnectionError("closed before answering")
                self.conn.receive_data(data)
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                self.max_age = _max_age(event.headers)
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("closed mid-answer")
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        else:
            self.close()
        return status


def _max_age(headers) -> int:
    """max-age of a Cache-Control header (0 without one, or with no-cache/no-store)."""
    for name, value in headers:
        if name.lower() == b"cache-control":
            value = value.decode("latin-1").lower()
            if "no-cache" in value or "no-store" in value:
                return 0
            found = re.search(r"max-age=(\d+)", value)
            return int(found.group(1)) if found else 0
    return 0


class Stats:
    """Latencies (ms) and errors of one kind of request."""

    def __init__(self):
        self.latencies: list[float] = []
        self.ends: list[float] = []  # when each answer came (monotonic), beside its latency
        self.errors = 0
        self.error_kinds: dict[str, int] = {}

    def add(self, ms: float) -> None:
        """One answer's latency, and when it came."""
        self.latencies.append(ms)
        self.ends.append(time.monotonic())

    def fail(self, what: str):
        self.errors += 1
        self.error_kinds[what] = self.error_kinds.get(what, 0) + 1

    def summary(self, seconds: float, started: float = 0.0) -> dict:
        lat = sorted(self.latencies)
        pct = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]) if lat else (lambda q: None)
        # The same percentile without the first WARM_UP seconds: the run starts with every
        # client opening its TLS connection within a second or three and each worker thread's
        # first request; what a server does under the load at steady state is the rest.
        steady = sorted(
            ms
            for ms, end in zip(self.latencies, self.ends, strict=True)
            if end - started >= WARM_UP
        )
        worst = {}  # the slowest answer of each second of the run
        for ms, end in zip(self.latencies, self.ends, strict=True):
            second = int(end - started)
            worst[second] = max(worst.get(second, 0.0), ms)
        return {
            "count": len(lat),
            "per_second": round(len(lat) / seconds, 1),
            "p50_ms": None if not lat else round(statistics.median(lat), 1),
            "p99_ms": None if not lat else round(pct(0.99), 1),
            "p99_after_warm_up_ms": (
                round(steady[min(len(steady) - 1, int(0.99 * len(steady)))], 1) if steady else None
            ),
            "slowest_per_second_ms": [round(worst.get(s, 0.0)) for s in range(int(seconds) + 1)],
            "errors": self.errors,
            "error_kinds": self.error_kinds,
        }


async def timed(conn: Connection, path: str, headers: dict, stats: Stats | None) -> bool:
    start = time.perf_counter()
    try:
        status = await asyncio.wait_for(conn.get(path, headers), REQUEST_TIMEOUT)
    except (TimeoutError, OSError, h11.ProtocolError, ConnectionError) as err:
        conn.close()
        if stats is not None:
            stats.fail(type(err).__name__)
        return False
    if status >= 400:
        if stats is not None:
            stats.fail(f"HTTP {status}")
        return False
    if stats is not None:
        stats.add((time.perf_counter() - start) * 1000)
    return True


async def pause(seconds: float, stop_at: float) -> None:
    """Think, but not past the end of the run."""
    await asyncio.sleep(max(0.0, min(seconds, stop_at - time.monotonic())))


async def api_client(base, tls, token, stop_at, stats: Stats, counter: list):
    conn = Connection(base, tls)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    await asyncio.sleep(random.uniform(0, 1.0))  # spread the first wave
    while time.monotonic() < stop_at:
        await timed(conn, "/api/v1/containers/", headers, stats)
        counter[0] += 1
        await pause(random.uniform(0.5, 1.5) * THINK[0], stop_at)
    conn.close()


async def browser(base, tls, cookie, assets, stop_at, pages: Stats, static: Stats, counter: list):
    conn = Connection(base, tls)
    headers = {"Cookie": f"sessionid={cookie}", "Accept": "text/html", "Accept-Encoding": "gzip"}
    fresh_until: dict[str, float] = {}  # --browser-cache: the browser's own cache
    await asyncio.sleep(random.uniform(0, 3.0))
    while time.monotonic() < stop_at:
        start = time.perf_counter()
        ok = await timed(conn, "/containers/", headers, None)
        counter[0] += 1
        for asset in assets:
            if fresh_until.get(asset, 0.0) > time.monotonic():
                continue
            fetched = await timed(conn, asset, headers, static)
            ok = fetched and ok
            counter[0] += 1
            if fetched and BROWSER_CACHE[0] and conn.max_age:
                fresh_until[asset] = time.monotonic() + conn.max_age
        if ok:
            pages.add((time.perf_counter() - start) * 1000)
        else:
            pages.fail("page")
        await pause(random.uniform(2.0, 4.0) * THINK[0], stop_at)
    conn.close()


async def discover_assets(base, tls, cookie) -> list[str]:
    """The page's own scripts and stylesheets (what a browser fetches with it)."""
    reader, writer = await asyncio.open_connection(
        urlsplit(base).hostname, urlsplit(base).port, ssl=tls,
        server_hostname=urlsplit(base).hostname if tls else None,
    )  # fmt: skip
    writer.write(
        f"GET /containers/ HTTP/1.1\r\nHost: {urlsplit(base).netloc}\r\n"
        f"Cookie: sessionid={cookie}\r\nConnection: close\r\n\r\n".encode()
    )
    body = (await reader.read()).decode(errors="replace")
    writer.close()
    if " 200 " not in body.split("\r\n", 1)[0]:
        raise RuntimeError(f"dashboard page: {body[:300]}")
    found = re.findall(r'(?:src|href)="(/static/[^"?#]+\.(?:js|css))"', body)
    return list(dict.fromkeys(found))


def cpu_seconds(root_pid: int) -> float:
    """CPU time (user + system) used so far by a process and its children (the workers): a
    cost per request that other load on the machine does not distort as it does latency."""
    pids = [root_pid]
    for task in Path(f"/proc/{root_pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            pids += [int(p) for p in (task / "children").read_text().split()]
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
            if pid == root_pid:  # children that exited meanwhile (PostgreSQL's backends)
                total += int(fields[13]) + int(fields[14])
    return total / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU time of this process: the load generator (TLS and HTTP for every client) runs on
    the same cores as the server, so its share is reported too."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_load(base, tls, token, cookie, args, server_pid: int, db_pid: int = 0) -> dict:
    assets = await discover_assets(base, tls, cookie)
    stop_at = time.monotonic() + args.seconds
    api, pages, static = Stats(), Stats(), Stats()
    counter = [0]
    started = time.monotonic()
    cpu_before = cpu_seconds(server_pid)
    db_before = cpu_seconds(db_pid) if db_pid else 0.0
    client_before = own_cpu_seconds()
    await asyncio.gather(
        *(api_client(base, tls, token, stop_at, api, counter) for _ in range(args.api_clients)),
        *(
            browser(base, tls, cookie, assets, stop_at, pages, static, counter)
            for _ in range(args.browsers)
        ),
    )
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(server_pid) - cpu_before
    db_cpu = cpu_seconds(db_pid) - db_before if db_pid else 0.0
    client_cpu = own_cpu_seconds() - client_before
    with contextlib.suppress(OSError):
        load = os.getloadavg()[0]
    return {
        "server_cpu_ms_per_request": round(1000 * cpu / max(counter[0], 1), 2),
        # Cores busy on average: the server's processes, PostgreSQL's, the load generator's.
        "cores_used": {
            "server": round(cpu / elapsed, 2),
            "database": round(db_cpu / elapsed, 2),
            "load_generator": round(client_cpu / elapsed, 2),
        },
        "load_generator_cpu_ms_per_request": round(1000 * client_cpu / max(counter[0], 1), 2),
        "load_average": round(load, 1),
        "seconds": round(elapsed, 1),
        "requests_per_second": round(counter[0] / elapsed, 1),
        "api_list": api.summary(elapsed, started),
        "page_loads": pages.summary(elapsed, started),
        "static_files": static.summary(elapsed, started),
        "assets_per_page": len(assets),
    }


def start_dev(served: ProdServer, port: int) -> subprocess.Popen:
    env = dict(served.env, DJANGO_SETTINGS_MODULE="config.settings.dev")
    log = open(served.base / "dev.log", "ab")  # noqa: SIM115 (lives with the process)
    proc = subprocess.Popen(
        [str(PY), "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    import socket

    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((served.base / "dev.log").read_text()[-2000:])
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the development server did not start")


def log_problems(path: Path, limit: int = 8) -> dict:
    """What went wrong on the server's side: counts of its error lines, by their first words."""
    counts: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            if any(
                w in line for w in ("ERROR", "CRITICAL", "WORKER TIMEOUT", "Error:", "Exception")
            ):
                key = re.sub(r"^\[[^]]*\] \[\d+\] ", "", line)[:90]
                counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1])[:limit])


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--api-clients", type=int, default=200)
    parser.add_argument("--browsers", type=int, default=50)
    parser.add_argument("--containers", type=int, default=500)
    parser.add_argument(
        "--workers", type=int, default=0, help="prod workers (0: one per core, at least 2)"
    )
    parser.add_argument("--think", type=float, default=1.0, help="think-time factor (0: none)")
    parser.add_argument(
        "--database", choices=("sqlite", "postgres"), default="sqlite",
        help="postgres: a private cluster (initdb) on a free loopback port, stopped after",
    )  # fmt: skip
    parser.add_argument(
        "--browser-cache", action="store_true",
        help="browsers keep assets for their Cache-Control max-age, as a browser does "
        "(default: every page load fetches every asset again)",
    )  # fmt: skip
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    # Bounded: at most this many clients and this long, on loopback only.
    if not (0 < args.seconds <= 600 and args.api_clients <= 1000 and args.browsers <= 200):
        parser.error("--seconds up to 600, at most 1000 API clients and 200 browsers")

    THINK[0] = args.think
    BROWSER_CACHE[0] = args.browser_cache
    base = Path(tempfile.mkdtemp(prefix="berth-prodload-"))
    base.chmod(0o755)  # the postgres user reaches its cluster below it
    (base / "redis").mkdir()
    redis = RedisServer(base / "redis").start()
    dev = served = pg = None
    try:
        extra = {}
        if args.database == "postgres":
            pg = Postgres(base / "pg")
            extra["DATABASE_URL"] = pg.start()
        workers = args.workers or max(2, os.cpu_count() or 1)
        served = ProdServer(base, redis.url, workers=workers, **extra)
        served.prepare(ROWS.format(host=served.host, n=args.containers))
        cookie = served.manage("shell", "-c", SESSION).strip().splitlines()[-1]
        results = {"containers": args.containers, "api_clients": args.api_clients,
                   "browsers": args.browsers, "prod_workers": workers, "think": args.think,
                   "browser_cache": args.browser_cache,
                   "database": args.database}  # fmt: skip

        db_pid = pg.pid() if pg is not None else 0
        dev_port = free_port()
        dev = start_dev(served, dev_port)
        print(f"dev: runserver on http://127.0.0.1:{dev_port}/ for {args.seconds:g} s", flush=True)
        results["dev"] = asyncio.run(
            run_load(
                f"http://127.0.0.1:{dev_port}", None, served.token, cookie, args, dev.pid, db_pid
            )
        )
        stop(dev)
        dev = None

        served.start()
        print(f"prod: granian, {workers} WSGI workers, HTTPS, for {args.seconds:g} s")
        results["prod"] = asyncio.run(
            run_load(
                served.base_url, served.tls, served.token, cookie, args, served.proc.pid, db_pid
            )
        )
        results["dev"]["server_log_problems"] = log_problems(served.base / "dev.log")
        results["prod"]["server_log_problems"] = log_problems(served.base / "web.log")
        d, p = results["dev"], results["prod"]
        results["ratio_rps"] = round(
            p["requests_per_second"] / max(d["requests_per_second"], 0.1), 2
        )
        results["ratio_list_rps"] = round(
            p["api_list"]["per_second"] / max(d["api_list"]["per_second"], 0.1), 2
        )
        print(json.dumps(results, indent=2))
        targets = {
            "no errors (prod)": p["api_list"]["errors"] + p["page_loads"]["errors"] == 0,
            "p99 of the list < 200 ms (prod, whole run)": (p["api_list"]["p99_ms"] or 1e9) < 200,
            f"p99 of the list < 200 ms (prod, after the first {WARM_UP:g} s)": (
                p["api_list"]["p99_after_warm_up_ms"] or 1e9
            )
            < 200,
            ">= 4x the dev server's requests per second": results["ratio_rps"] >= 4,
        }
        for name, met in targets.items():
            print(f"{'met ' if met else 'MISSED'}  {name}")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
    finally:
        if dev is not None:
            stop(dev)
        if served is not None:
            served.stop()
        if redis is not None:
            redis.stop()
        if pg is not None:
            pg.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
