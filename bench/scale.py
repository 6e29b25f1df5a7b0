#!/usr/bin/env python
"""Every operation at 10, 300 and 1,000 idle containers: Berth next to a private dockerd.

One run starts a served Berth (its own Redis, SQLite, agent, runtime root; bench/served_berth.py)
and a private dockerd (bench/private_dockerd.py), then fills both to each count with idle
busybox `sleep` containers (32 MiB memory limit, no network) through their APIs with
--clients parallel clients, and at each count measures, interleaved (medians of --runs):

  runtime list()              Runtime.list() in this process      | Engine GET /containers/json
  ps                          `python -m runtime ps` (whole CLI)   | `docker ps` (whole CLI)
  ps (scripts/berth-runtime)  the same command line, -I -S, no runpy | `docker ps` (the same sample)
  runtime list() CPU, ps CPU  the same, CPU time of Berth's process (no Docker column)
  runtime create+start        Runtime.run() in the fork server, as | Engine create + start
                              the agent calls it (runtime/forkserver.py)
  runtime remove (stopped)    Runtime.delete()                     | Engine DELETE
  API create+start            POST /api/v1/containers/?wait=30     | Engine create + start
  API remove (stopped)        DELETE /api/v1/containers/ID/?wait=30| Engine DELETE
  API list, default page      GET /api/v1/containers/              | Engine GET /containers/json
  API list, 500 rows          GET ...?page_size=500                | Engine GET /containers/json
  API list, page of 10        GET ...?page_size=10 (the same rows at every count)
  API ..., prod server        the lists, the create and the remove again through the production
                              server (--server prod: config/http_server.py, config.settings.prod,
                              plain HTTP as behind a TLS proxy); the runserver rows stay
  dashboard list page         GET /containers/ (Django test client in this process, admin)
  dashboard list, 10 rows     GET /containers/?per_page=10 (the same rows at every count)
  control: ...                work that no count can change (a fixed loop in this process, a
                              Redis PING): what the machine itself does at each count (with
                              1,000 containers it runs everything slower; session 14)

plus the fill itself (containers per second through each API) and the memory per idle
container (the MemAvailable drop, and the containers' own: their cgroups' memory usage plus
their monitors' proportional set size), and where Berth's CPU goes (per process group: web, agent main process, its
pool, fork server, Redis; from /proc/PID/stat) per API create, per container filled, and per
second of the idle stack at each count (the agent's heartbeat, reconcile and health loops),
with the containers' monitors beside it, and dockerd's idle stack (dockerd, containerd, its
shims) over the same seconds when the run is interleaved. Targets (issue 19): nothing in Berth grows more than 10 % from the first count
to the last; ps and the API list no slower than Docker's; remove no slower than the Engine
API; 1,000 containers through the API in under 60 s with 8 clients; under 1 MB per container.

    sudo .venv/bin/python bench/scale.py [--counts 10,300,1000] [--runs 11] [--clients 8]
        [--no-docker] [--settings config.settings.dev] [--server runserver|prod] [--settle 180]
        [--pause-peer] [--sequential] [--no-twin]

--pause-peer measures Berth's rounds first, with dockerd's filled containers paused (frozen),
then Docker's with them running again (not interleaved): it tells whether dockerd's idle
containers' CPU is what Berth's growth measures (session 9: it was not; docs/benchmarks.md).

A twin Berth (a second installation: its own Redis, database, agent, servers, state root
and prefix) stays at the first count and is measured in the same rounds as Berth, each first
in every other round (--no-twin leaves it out). The served rows move by more between two
quiet minutes of this machine than a 10 % growth (session 18: a page of 10 through the
production server read 2.2 ms and 4.0 ms at one count and one tree), and the sequential
series measures each count minutes apart; the twin shares every count's machine state, so
"Berth / twin" grows only with what the count costs Berth. The API lists are also requested
alternately of both, 200 requests each per count ("..., paired" rows): their medians rest on
hundreds of requests, each beside one of the twin's; so do the creates and removes, 100 each
("..., paired"). The dashboard rows have no twin (its client is bound to one database).

After each fill the bench waits (up to --settle seconds, printed) for the machine to settle:
Berth's processes under 10 % of a CPU and the whole machine under 35 % busy over 3 s, so a
count is not measured in the fill's wake (its writes, the agent's catching up, dockerd's fill).
"""

import argparse
import http.client
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_http import tree_cpu_by_group  # noqa: E402
from private_dockerd import Dockerd, call, create_started  # noqa: E402
from procs import cpu_by_pid, descendants, pids_mentioning  # noqa: E402
from served_berth import PROD_HEADERS, REPO, ServedBerth  # noqa: E402

LIMIT = 32 * 1024 * 1024
CREATE_FAILURES: list[str] = []  # API creates that failed in the runtime (retried)
SPEC = {"command": ["sleep", "100000"], "network": {"mode": "none"}, "limits": {"memory": LIMIT}}


def ms_of(fn) -> float:
    """Milliseconds one call of `fn` takes."""
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def cpu_ms_of(fn) -> float:
    """CPU milliseconds (user + system) one call of `fn` takes in this process."""
    start = time.process_time()
    fn()
    return (time.process_time() - start) * 1000


def child_cpu_ms_of(fn) -> float:
    """CPU milliseconds (user + system) of the child processes `fn` runs and waits for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    fn()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000


def busy_fraction(berth, seconds: float) -> tuple[float, float]:
    """(the machine's busy share of all CPUs, Berth's processes' share of one CPU) over
    `seconds`."""

    def machine():
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait

    total0, idle0 = machine()
    cpu0 = sum(tree_cpu_by_group(berth.pids()).values())
    time.sleep(seconds)
    total1, idle1 = machine()
    cpu1 = sum(tree_cpu_by_group(berth.pids()).values())
    busy = 1 - (idle1 - idle0) / max(total1 - total0, 1)
    return busy, (cpu1 - cpu0) / 1000 / seconds


def settle(berth, limit: float) -> str:
    """Wait until the machine and Berth are quiet after a fill (at most `limit` seconds);
    what was waited, for the output."""
    start = time.monotonic()
    busy, own = busy_fraction(berth, 3.0)
    while (busy > 0.35 or own > 0.10) and time.monotonic() - start < limit:
        busy, own = busy_fraction(berth, 3.0)
    settled = "settled" if busy <= 0.35 and own <= 0.10 else "NOT settled"
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{settled} after {time.monotonic() - start:.0f} s: machine {busy:.0%} busy, "
        f"Berth {own:.0%} of a CPU, load {load}"
    )


def containers_memory(berth) -> tuple[int, int]:
    """(bytes the containers' cgroups use, bytes of their monitors' PSS): the containers'
    own memory, which other processes on the machine do not move as they move
    MemAvailable."""
    config = berth.rt.config
    usage = 0
    for group in (config.cgroup_root / "memory", config.cgroup_root):  # cgroup v1, v2
        for name in ("memory.usage_in_bytes", "memory.current"):
            path = group / config.cgroup_parent / name
            if not usage and path.exists():
                usage = int(path.read_text())
    pss = 0
    for entry in berth.rt.list():
        pid = entry.get("pid")
        if not pid or entry.get("status") != "running":
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            shim = int(stat.rsplit(")", 1)[1].split()[1])
            for line in Path(f"/proc/{shim}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            continue
    return usage, pss


def mem_available() -> int:
    """MemAvailable in bytes."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


class Berth:
    """The served Berth's API and runtime, as the bench drives them."""

    def __init__(self, served: ServedBerth):
        self.served = served
        self.auth = {"Authorization": f"Bearer {served.token}"}
        self.port = served.ports["runserver"]
        self.prod_port = served.ports.get("prod")  # --server prod
        from runtime.api import Runtime
        from runtime.config import RuntimeConfig
        from runtime.forkserver import LeanRuntime

        base = served.base
        # Creates and starts run in a fork server, as the agent's do: forked from this process
        # (Django, the dashboard's client, the rounds' results), each launch cost in proportion
        # to its memory, which grows over the run (a 150 MB caller: 34 ms against 17; session 14).
        self.rt = LeanRuntime(
            Runtime(RuntimeConfig(root=base / "root", run_root=base / "run", prefix=served.prefix))
        )
        import redis

        # The served Berth's Redis, for the control row (a PING: no count changes its work).
        self.redis = redis.Redis.from_url(served.env["REDIS_URL"])
        self.cli_env = dict(
            os.environ,
            BERTH_ROOT=str(base / "root"),
            BERTH_RUN_ROOT=str(base / "run"),
            BERTH_PREFIX=served.prefix,
        )

    def pids(self) -> list[int]:
        """The served Berth's processes (web, agent, Redis), for their CPU time."""
        return [proc.pid for proc in self.served.procs.values()]

    def conn(self) -> http.client.HTTPConnection:
        """A keep-alive connection to the web server."""
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)

    def api_create(self, conn, name: str, headers: dict | None = None) -> str:
        """Create and start one container through the API, waiting for it; returns its id."""
        body = {"team": "bench", "start": True, "spec": {"image": "busybox", "name": name, **SPEC}}
        head = {**self.auth, **(headers or {})}
        status, data = call(conn, "POST", "/api/v1/containers/?wait=120", body, head)
        op = data.get("operation") or {} if status == 200 else {}
        if op.get("state") == "failed" and "exited during setup" in op.get("error", ""):
            # A create the runtime failed (seen 2026-12-04 17:47 under load): counted,
            # printed at the end, and made again under another name.
            CREATE_FAILURES.append(f"{name}: {op['error']}")
            return self.api_create(conn, f"{name}r", headers)
        state = (data.get("container") or {}).get("observed_state") if status == 200 else None
        if state != "running":
            raise RuntimeError(f"berth create: {status} {data!r:.400}")
        return data["container"]["id"]

    def api_stop(self, conn, cid) -> None:
        """Stop through the API (untimed preparation of a remove)."""
        status, data = call(
            conn, "POST", f"/api/v1/containers/{cid}/stop/?wait=60", {"timeout": 0}, self.auth
        )
        if status != 200:
            raise RuntimeError(f"berth stop: {status} {data!r:.300}")

    def api_remove(self, conn, cid, headers: dict | None = None) -> None:
        """Remove a stopped container through the API, waiting for it."""
        head = {**self.auth, **(headers or {})}
        status, data = call(conn, "DELETE", f"/api/v1/containers/{cid}/?wait=60", None, head)
        if status != 200:
            raise RuntimeError(f"berth remove: {status} {data!r:.300}")

    def api_list(self, conn, query: str, headers: dict | None = None) -> int:
        """GET the container list; returns the rows in the answer."""
        head = {**self.auth, **(headers or {})}
        status, data = call(conn, "GET", f"/api/v1/containers/{query}", None, head)
        if status != 200:
            raise RuntimeError(f"berth list: {status} {data!r:.300}")
        return len(data["results"])

    def ps(self) -> None:
        """`python -m runtime ps` as a user types it."""
        subprocess.run(
            [str(REPO / ".venv" / "bin" / "python"), "-m", "runtime", "ps"],
            env=self.cli_env,
            cwd=REPO,
            check=True,
            capture_output=True,
        )

    def ps_script(self) -> None:
        """scripts/berth-runtime ps: the same command line started with -I -S, without runpy."""
        subprocess.run(
            [str(REPO / "scripts" / "berth-runtime"), "ps"],
            env=self.cli_env,
            cwd=REPO,
            check=True,
            capture_output=True,
        )


class Docker:
    """The private dockerd, driven through its Engine API and its CLI."""

    def __init__(self, dockerd: Dockerd):
        self.dockerd = dockerd

    def conn(self):
        """A keep-alive connection to dockerd's socket."""
        return self.dockerd.connect()

    def create(self, conn, name: str) -> str:
        """Create and start one container; returns its id."""
        body = {
            "Image": "bb",
            "Cmd": SPEC["command"],
            "HostConfig": {"NetworkMode": "none", "Memory": LIMIT},
        }
        return create_started(conn, body, name)

    def stop(self, conn, cid: str) -> None:
        """Kill it (untimed preparation of a remove; `sleep` as pid 1 ignores SIGTERM)."""
        call(conn, "POST", f"/containers/{cid}/kill")
        call(conn, "POST", f"/containers/{cid}/wait")

    def remove(self, conn, cid: str) -> None:
        """Remove a stopped container."""
        status, data = call(conn, "DELETE", f"/containers/{cid}")
        if status != 204:
            raise RuntimeError(f"docker remove: {status} {data!r:.300}")

    def list(self, conn) -> int:
        """GET /containers/json (running ones, as `docker ps`)."""
        status, data = call(conn, "GET", "/containers/json")
        if status != 200:
            raise RuntimeError(f"docker list: {status}")
        return len(data)

    def running_ids(self, conn) -> "list[str]":
        """The ids of dockerd's running containers (the fill's)."""
        status, data = call(conn, "GET", "/containers/json")
        if status != 200:
            raise RuntimeError(f"docker list: {status}")
        return [item["Id"] for item in data]

    def pause(self, conn, cid: str) -> str:
        """Freeze one container (its processes get no CPU until unpaused); returns its id."""
        return self._post(conn, cid, "pause")

    def unpause(self, conn, cid: str) -> str:
        """Thaw one paused container; returns its id."""
        return self._post(conn, cid, "unpause")

    def _post(self, conn, cid: str, verb: str) -> str:
        status, data = call(conn, "POST", f"/containers/{cid}/{verb}")
        if status != 204:
            raise RuntimeError(f"docker {verb}: {status} {data!r:.300}")
        return cid

    def ps(self) -> None:
        """`docker ps` as a user types it."""
        subprocess.run(
            ["docker", "-H", f"unix://{self.dockerd.sock}", "ps"], check=True, capture_output=True
        )


def fill(make_conn, create, names: list[str], clients: int) -> tuple[float, list[str]]:
    """Create `names` with `clients` parallel clients; returns (seconds, ids). (Any per-item
    call `create(conn, item) -> id` goes through it, e.g. pausing the filled containers.)"""
    ids: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    todo = list(names)

    def worker():
        conn = make_conn()
        while True:
            with lock:
                if not todo or errors:
                    return
                name = todo.pop()
            try:
                cid = create(conn, name)
            except BaseException as err:  # reported below, after the other clients stop
                errors.append(err)
                return
            with lock:
                ids.append(cid)

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    except BaseException as err:  # ^C: the clients stop after their current container
        errors.append(err)
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - start, ids


def _cpu_since(berth: Berth, before: dict[str, float], per: float) -> dict[str, float]:
    """CPU milliseconds of each Berth process group since `before`, divided by `per`."""
    after = tree_cpu_by_group(berth.pids())
    return {g: (ms - before.get(g, 0.0)) / per for g, ms in after.items() if g != "gone"}


def idle_cpu(groups: dict[str, list[int]], seconds: float) -> dict[str, float]:
    """CPU milliseconds per second of each group of processes over `seconds` of idling."""
    before = {name: cpu_by_pid(pids) for name, pids in groups.items()}
    time.sleep(seconds)
    spent = {}
    for name, pids in groups.items():
        after = cpu_by_pid(pids)
        spent[name] = sum(ms - before[name].get(pid, ms) for pid, ms in after.items()) / seconds
    return spent


def start_dockerd(folder: Path) -> Dockerd:
    """A private dockerd in `folder` (made here), with the busybox image as "bb"."""
    from runtime.images.busybox import build_rootfs_tar

    folder.mkdir()
    dockerd = Dockerd(folder, bridge=False)
    build_rootfs_tar(str(folder / "rootfs.tar"))
    dockerd.start(folder / "rootfs.tar", "bb")
    return dockerd


def clean_up(
    base: Path, dockerd: Dockerd | None, *served: ServedBerth | None, database=None
) -> None:
    """Whatever failed: dockerd's containers and dockerd, each served Berth, its database (a
    served_berth.Postgres) when given, then `base`."""
    try:
        if dockerd is not None:
            remove_all(dockerd)
            dockerd.stop()
    finally:
        try:
            for berth in served:
                if berth is not None:
                    berth.stop()
        finally:
            if database is not None:
                database.stop()
            subprocess.run(["rm", "-rf", "--one-file-system", str(base)], check=False)


def remove_all(dockerd: Dockerd) -> None:
    """Remove every container of the private dockerd (also those of an interrupted fill)."""
    conn = dockerd.connect()
    try:
        _, listed = call(conn, "GET", "/containers/json?all=1")
    except OSError:
        return
    for item in listed if isinstance(listed, list) else []:
        try:
            call(conn, "DELETE", f"/containers/{item['Id']}?force=true")
        except OSError:
            conn = dockerd.connect()


def dashboard_client(served: ServedBerth):
    """A Django test client logged in as admin, on the served Berth's database (in-process)."""
    for key in ("BERTH_DATA_DIR", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "BERTH_ADMIN_PASSWORD"):
        os.environ[key] = served.env[key]
    sys.path[:0] = [str(REPO / "platform")]
    import django

    django.setup()
    from django.test import Client
    from django.test.utils import setup_test_environment

    from accounts.models import User

    setup_test_environment()
    client = Client()
    client.force_login(User.objects.get(username="admin"))
    return client


def measure(
    berth: Berth | None,
    docker: Docker | None,
    dash,
    runs: int,
    tag: str,
    pause_peer: bool = False,
    twin: Berth | None = None,
) -> dict:
    """Every measure at the current count, interleaved; {measure: {"berth": [...], "docker": []}}.

    pause_peer: Berth's rounds first with dockerd's filled containers paused (frozen: they
    take no CPU meanwhile), then Docker's with them running: whether Berth's growth from 10
    to 1,000 is dockerd's idle load (issue 19; it was not, docs/benchmarks.md session 9).

    twin: a second Berth kept at the first count, measured in the same rounds (side "twin")."""
    out: dict[str, dict[str, list[float]]] = {}

    def add(what, side, value):
        out.setdefault(what, {}).setdefault(side, []).append(value)

    bconn = berth.conn() if berth else None
    dconn = docker.conn() if docker else None
    tconn = twin.conn() if twin else None

    def berth_round(i: int) -> list:
        """Berth's round, and the twin's beside it (each first in every other round)."""
        mine = lambda: _berth_round(berth, bconn, dash, f"{tag}{i}")  # noqa: E731
        if twin is None:
            return mine()
        theirs = lambda: [  # noqa: E731
            (what, "twin", value)
            for what, _, value in _berth_round(twin, tconn, None, f"{tag}t{i}")
        ]
        return mine() + theirs() if i % 2 else theirs() + mine()

    if berth is None:  # --sequential: Docker's side alone
        for i in range(runs + 1):  # the first round warms caches and is dropped
            for what, side, value in _docker_round(docker, dconn, f"{tag}{i}"):
                if i:
                    add(what, side, value)
        return out
    if docker and pause_peer:
        filled = docker.running_ids(dconn)
        fill(docker.conn, docker.pause, filled, 8)
        try:
            for i in range(runs + 1):  # the first round warms caches and is dropped
                for what, side, value in berth_round(i):
                    if i:
                        add(what, side, value)
        finally:
            fill(docker.conn, docker.unpause, filled, 8)
        for i in range(runs + 1):
            for what, side, value in _docker_round(docker, dconn, f"{tag}{i}"):
                if i:
                    add(what, side, value)
        return out
    if twin is not None:
        for what, side, value in _paired_lists(berth, twin) + _paired_lifecycle(berth, twin, tag):
            add(what, side, value)
    for i in range(runs + 1):  # the first round warms caches and is dropped
        sample = berth_round(i)
        if docker:
            sample += _docker_round(docker, dconn, f"{tag}{i}")
        if i:
            for what, side, value in sample:
                add(what, side, value)
    return out


# Requests per side of each paired list row: a row's median then rests on hundreds of
# requests, each beside one of the twin's, not on one request per round.
PAIRED_REQUESTS = 200


def _paired_lists(berth: Berth, twin: Berth) -> list[tuple[str, str, float]]:
    """The API's lists requested alternately of Berth and of the twin, PAIRED_REQUESTS each.

    One request per round moves with the machine between rounds (a page of 10 read 1.65 ms,
    then 2.28 and 2.86 ms on one server within five minutes: session 19); alternating
    request by request, both sides see the same machine, and the ratio of their medians
    moves only with what the count costs Berth (0.1 ms at 1,000 containers, session 19).
    """
    sides = [("berth", berth), ("twin", twin)]
    sample = []
    servers = [("", lambda b: b.conn(), None)]
    if berth.prod_port:
        servers.append((", prod server", _prod_conn, PROD_HEADERS))
    for suffix, connect, headers in servers:
        conns = {side: connect(b) for side, b in sides}
        for what, query in LIST_QUERIES:
            for side, b in sides:  # warm: the first requests of a connection cost more
                for _ in range(5):
                    b.api_list(conns[side], query, headers)
            for i in range(PAIRED_REQUESTS):
                for side, b in sides if i % 2 else sides[::-1]:
                    ms = ms_of(lambda b=b, c=conns[side], q=query, h=headers: b.api_list(c, q, h))
                    sample.append((f"{what}{suffix}, paired", side, ms))
        for conn in conns.values():
            conn.close()
    return sample


# Creates and removes per side of each paired lifecycle row.
PAIRED_LIFECYCLES = 100


def _paired_lifecycle(berth: Berth, twin: Berth, tag: str) -> list[tuple[str, str, float]]:
    """Create+start and remove through the runtime and the API, alternately of Berth and of
    the twin, PAIRED_LIFECYCLES each: one sample per round moves with the machine (15 rounds
    read 1.13x for a create that costs the same at both counts, session 19)."""
    sides = [("berth", berth), ("twin", twin)]
    conns = {side: b.conn() for side, b in sides}
    prod = {side: _prod_conn(b) for side, b in sides} if berth.prod_port else {}
    sample = []

    def lifecycle(side: str, b: Berth, name: str) -> None:
        made = {}
        ms = ms_of(
            lambda: made.__setitem__(
                "r", b.rt.run({"image": "busybox", "name": name, **SPEC})["id"]
            )
        )
        sample.append(("runtime create+start, paired", side, ms))
        b.rt.kill(made["r"])
        sample.append(
            ("runtime remove (stopped), paired", side, ms_of(lambda: b.rt.delete(made["r"])))
        )
        conn, head, suffix = (
            (prod[side], PROD_HEADERS, ", prod server") if prod else (conns[side], None, "")
        )
        ms = ms_of(lambda: made.__setitem__("a", b.api_create(conn, f"{name}a", head)))
        sample.append((f"API create+start{suffix}, paired", side, ms))
        b.api_stop(conns[side], made["a"])
        ms = ms_of(lambda: b.api_remove(conn, made["a"], head))
        sample.append((f"API remove (stopped){suffix}, paired", side, ms))

    for i in range(PAIRED_LIFECYCLES + 1):
        for side, b in sides if i % 2 else sides[::-1]:
            before = len(sample)
            lifecycle(side, b, f"q{tag}{side[0]}{i}")
            if i == 0:
                del sample[before:]  # the first of each side warms its caches
    for conn in [*conns.values(), *prod.values()]:
        conn.close()
    return sample


def _prod_conn(berth: Berth) -> http.client.HTTPConnection:
    """A connection to the production server."""
    return http.client.HTTPConnection("127.0.0.1", berth.prod_port, timeout=300)


def _fixed_work() -> int:
    """A fixed amount of pure-Python work (about a millisecond): the control row."""
    return sum(i * i for i in range(20000))


def _berth_round(berth: Berth, conn, dash, name: str) -> list[tuple[str, str, float]]:
    """One sample of every Berth measure."""
    sample = [
        ("control: fixed Python work", "berth", ms_of(_fixed_work)),
        ("control: Redis PING", "berth", ms_of(berth.redis.ping)),
        ("runtime list()", "berth", ms_of(berth.rt.list)),
    ]
    sample.append(("ps (whole CLI)", "berth", ms_of(berth.ps)))
    # CPU time beside wall time: on a loaded machine it says what the count costs, not the
    # other processes' share of the two CPUs (Docker's CLI leaves its work to dockerd, so these
    # two rows have no Docker column).
    sample.append(("runtime list() CPU", "berth", cpu_ms_of(berth.rt.list)))
    sample.append(("ps CPU (the CLI process)", "berth", child_cpu_ms_of(berth.ps)))
    sample.append(("ps (scripts/berth-runtime)", "berth", ms_of(berth.ps_script)))
    sample.append(("ps CPU (scripts/berth-runtime)", "berth", child_cpu_ms_of(berth.ps_script)))
    made = {}

    def run():
        made["r"] = berth.rt.run({"image": "busybox", "name": f"r{name}", **SPEC})["id"]

    wall, cpu = time.perf_counter(), time.process_time()
    run()
    sample.append(("runtime create+start", "berth", (time.perf_counter() - wall) * 1000))
    # The same create's CPU in this process (the launch's children not counted): whether a
    # count costs more, or only waits longer on a loaded machine.
    cpu_ms = (time.process_time() - cpu) * 1000
    sample.append(("runtime create+start CPU (this process)", "berth", cpu_ms))
    berth.rt.kill(made["r"])
    sample.append(("runtime remove (stopped)", "berth", ms_of(lambda: berth.rt.delete(made["r"]))))

    def create():
        made["a"] = berth.api_create(conn, f"a{name}")

    pids = berth.pids()
    before = tree_cpu_by_group(pids)
    sample.append(("API create+start", "berth", ms_of(create)))
    after = tree_cpu_by_group(pids)
    # Where the create's CPU goes, per process (10 ms ticks: read the medians across counts).
    for group in ("web", "agent", "pool", "forkserver"):
        cpu = after.get(group, 0.0) - before.get(group, 0.0)
        sample.append((f"API create+start CPU, {group}", "berth", cpu))
    berth.api_stop(conn, made["a"])
    sample.append(
        ("API remove (stopped)", "berth", ms_of(lambda: berth.api_remove(conn, made["a"])))
    )
    for what, query in LIST_QUERIES:
        sample.append((what, "berth", ms_of(lambda q=query: berth.api_list(conn, q))))
    if berth.prod_port:
        # A connection of its own per round, opened by one untimed list: a server closes a
        # kept-alive connection idle past its keepalive, and the rounds are further apart
        # than that (the settling after a fill).
        if hasattr(berth, "prod_conn"):
            berth.prod_conn.close()
        berth.prod_conn = http.client.HTTPConnection("127.0.0.1", berth.prod_port, timeout=300)
        berth.api_list(berth.prod_conn, "", PROD_HEADERS)
        for what, query in LIST_QUERIES:
            ms = ms_of(lambda q=query: berth.api_list(berth.prod_conn, q, PROD_HEADERS))
            sample.append((f"{what}, prod server", "berth", ms))
        # The create and the remove through the server users run in production (scripts/berth-up
        # --prod serves granian), against the Engine's; the stop is untimed, through runserver.
        create = lambda: made.__setitem__(  # noqa: E731
            "p", berth.api_create(berth.prod_conn, f"p{name}", PROD_HEADERS)
        )
        sample.append(("API create+start, prod server", "berth", ms_of(create)))
        berth.api_stop(conn, made["p"])
        remove = lambda: berth.api_remove(berth.prod_conn, made["p"], PROD_HEADERS)  # noqa: E731
        sample.append(("API remove (stopped), prod server", "berth", ms_of(remove)))

    if dash is None:  # the twin: the dashboard's client is bound to the measured Berth's database
        return sample

    def page(query=""):
        if dash.get(f"/containers/{query}").status_code != 200:
            raise RuntimeError("the dashboard's container list failed")

    sample.append(("dashboard list page", "berth", ms_of(page)))
    # The same ten rows at every count, as the API's page of 10 (the default page holds 10
    # rows at 10 containers and 50 at 1,000).
    sample.append(("dashboard list, 10 rows", "berth", ms_of(lambda: page("?per_page=10"))))
    return sample


def _docker_round(docker: Docker, conn, name: str) -> list[tuple[str, str, float]]:
    """One sample of every Docker measure (one Engine list stands for both list rows)."""
    engine_list = ms_of(lambda: docker.list(conn))
    docker_ps = ms_of(docker.ps)
    sample = [
        ("runtime list()", "docker", engine_list),
        ("ps (whole CLI)", "docker", docker_ps),
        ("ps (scripts/berth-runtime)", "docker", docker_ps),
    ]
    made = {}

    def create():
        made["d"] = docker.create(conn, f"d{name}")

    create_ms = ms_of(create)
    docker.stop(conn, made["d"])
    remove_ms = ms_of(lambda: docker.remove(conn, made["d"]))
    for what in CREATE_ROWS:
        sample.append((what, "docker", create_ms))
    for what in REMOVE_ROWS:
        sample.append((what, "docker", remove_ms))
    for what in LIST_ROWS:
        sample.append((what, "docker", engine_list))
    return sample


# The API list rows and their queries; --server prod adds each again through the production server.
LIST_QUERIES = [
    ("API list, default page", ""),
    ("API list, 500 rows", "?page_size=500"),
    # The same ten rows at every count: what the count itself costs a list (the default page
    # holds 10 rows at 10 containers and 50 at 1,000).
    ("API list, page of 10", "?page_size=10"),
]
LIST_ROWS = [what for what, _ in LIST_QUERIES]
# The remove rows set beside the Engine's DELETE; --server prod adds the production server's.
REMOVE_ROWS = ["runtime remove (stopped)", "API remove (stopped)"]
# The create rows set beside the Engine's create + start; --server prod adds the production server's.
CREATE_ROWS = ["runtime create+start", "API create+start"]


def report(
    counts, results: dict, fills: dict, memory: dict, runs: int, order: str = "interleaved"
) -> str:
    """The results as a Markdown table (medians in ms), with growth and ratios."""
    lines = [
        f"medians of {runs} {order} runs, ms; ratio = Berth / Docker at the same count; "
        f"growth = Berth at {counts[-1]} / Berth at {counts[0]}",
        "",
        *_table_head(counts, "Berth {n} | Docker {n} | ratio {n}"),
    ]
    for what in results[counts[0]]:
        row = [what]
        for n in counts:
            sides = results[n][what]
            b = statistics.median(sides["berth"])
            d = statistics.median(sides["docker"]) if sides.get("docker") else None
            row += [f"{b:.1f}", f"{d:.1f}" if d else "", f"{b / d:.2f}" if d else ""]
        first = statistics.median(results[counts[0]][what]["berth"])
        last = statistics.median(results[counts[-1]][what]["berth"])
        row.append(f"{last / first:.2f}" if first else "")  # CPU in 10 ms ticks may read 0
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    for n in counts:
        for side, (seconds, made) in fills.get(n, {}).items():
            lines.append(f"- fill to {n} ({side}): {made} containers in {seconds:.1f} s")
    for side, (drop, made) in memory.items():
        if made:
            lines.append(
                f"- MemAvailable drop per idle container ({side}, {made}): {drop / made / 1e6:.2f} MB"
            )
    lines += twin_report(counts, results)
    return "\n".join(lines)


def _table_head(counts, columns: str) -> list[str]:
    """A Markdown table's header and rule: `columns` (three, with {n}) for each count."""
    return [
        "| measure | " + " | ".join(columns.format(n=n) for n in counts) + " | growth |",
        "|---|" + "---|---|---|" * len(counts) + "---|",
    ]


def twin_report(counts, results: dict) -> list[str]:
    """The rows a twin at the first count was measured on: Berth / twin in the same rounds.

    Both sides share the machine's state at each count (its other containers, its idle depth,
    whatever ran just before), so the ratio's growth is what the count costs Berth itself.
    """
    rows = [
        w for w, sides in results[counts[0]].items() if sides.get("twin") and sides.get("berth")
    ]
    if not rows:
        return []
    lines = [
        "",
        f"Against a twin Berth kept at {counts[0]} containers, measured in the same rounds "
        f"(medians, ms; ratio = Berth / twin; growth = ratio at {counts[-1]} / ratio at "
        f"{counts[0]}):",
        "",
        *_table_head(counts, "Berth {n} | twin | ratio {n}"),
    ]
    for what in rows:
        row, ratios = [what], []
        for n in counts:
            sides = results[n].get(what, {})
            b, t = statistics.median(sides["berth"]), statistics.median(sides["twin"])
            ratios.append(b / t if t else None)
            row += [f"{b:.1f}", f"{t:.1f}", f"{ratios[-1]:.2f}" if t else ""]
        grown = ratios[-1] / ratios[0] if ratios[0] and ratios[-1] else None
        row.append(f"{grown:.2f}" if grown else "")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def main() -> int:
    """Start both sides, fill and measure at each count, print the table, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="10,300,1000")
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--settings", default="config.settings.dev")
    parser.add_argument("--no-docker", action="store_true")
    parser.add_argument(
        "--server", choices=("runserver", "prod"), default="runserver",
        help="prod: the API lists also through the production server (granian, settings.prod)",
    )  # fmt: skip
    parser.add_argument("--idle", type=float, default=15.0, help="seconds of idle CPU sampled")
    parser.add_argument(
        "--pause-peer", action="store_true",
        help="measure Berth with dockerd's filled containers paused, then Docker with them running",
    )  # fmt: skip
    parser.add_argument(
        "--sequential", action="store_true",
        help="Berth's whole series first, then (its containers removed) Docker's: neither "
        "side measured beside the other's filled containers",
    )  # fmt: skip
    parser.add_argument(
        "--settle", type=float, default=180.0, help="at most this long to wait after a fill"
    )
    parser.add_argument(
        "--no-twin", action="store_true",
        help="without the second Berth kept at the first count and measured in the same rounds",
    )  # fmt: skip
    args = parser.parse_args()
    if args.sequential and (args.pause_peer or args.no_docker):
        parser.error(
            "--sequential runs Docker's series after Berth's: not with --pause-peer or --no-docker"
        )
    counts = sorted(int(n) for n in args.counts.split(","))
    # Bytecode as scripts/berth-up leaves it (compileall): a stale .pyc under
    # PYTHONDONTWRITEBYTECODE makes every `ps` compile its modules again.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", "runtime", "platform"],
        cwd=REPO,
        check=False,
        stdout=subprocess.DEVNULL,
    )
    base = Path(tempfile.mkdtemp(prefix="berth-scale-"))
    served = ServedBerth(base / "berth", args.settings)
    (base / "berth").mkdir()
    twin_served = None if args.no_twin else ServedBerth(base / "twin", args.settings)
    twin = None
    dockerd = None
    docker = None
    results, fills, memory = {}, {}, {"berth": [0, 0], "docker": [0, 0]}
    own_memory: dict[int, tuple[int, int]] = {}  # count: (cgroups' usage, monitors' PSS)
    settled: list[str] = []
    cpus: dict[int, dict[str, dict[str, float]]] = {}
    tag = secrets.token_hex(2)
    try:
        served.start(["runserver", "prod"] if args.server == "prod" else ["runserver"])
        if args.server == "prod":
            LIST_ROWS.extend(f"{what}, prod server" for what, _ in LIST_QUERIES)
            REMOVE_ROWS.append("API remove (stopped), prod server")
            CREATE_ROWS.append("API create+start, prod server")
        sys.path.insert(0, str(REPO))
        berth = Berth(served)
        if twin_served is not None:
            # The twin: a whole second Berth (its own Redis, database, agent, servers, state
            # root and prefix) that stays at the first count.
            (base / "twin").mkdir()
            twin_served.start(["runserver", "prod"] if args.server == "prod" else ["runserver"])
            twin = Berth(twin_served)
            fill(twin.conn, twin.api_create, [f"t{tag}{i}" for i in range(counts[0])], args.clients)
        if not args.no_docker:
            dockerd = start_dockerd(base / "docker")
            docker = Docker(dockerd)
        dash = dashboard_client(served)

        def berth_fill(n: int, have: int) -> None:
            names = [f"f{tag}{i}" for i in range(have, n)]
            before, cpu_before = mem_available(), tree_cpu_by_group(berth.pids())
            seconds, _ = fill(berth.conn, berth.api_create, names, args.clients)
            cpus[n] = {"fill": _cpu_since(berth, cpu_before, len(names) or 1)}
            # MemAvailable once the fill's writes and the agent's catching up are over.
            print(f"Berth filled to {n}; {settle(berth, args.settle)}", file=sys.stderr)
            memory["berth"][0] += before - mem_available()
            memory["berth"][1] += len(names)
            fills.setdefault(n, {})["Berth API"] = (seconds, len(names))

        def docker_fill(n: int, have: int) -> None:
            names = [f"f{tag}{i}" for i in range(have, n)]
            before = mem_available()
            seconds, _ = fill(docker.conn, docker.create, names, args.clients)
            print(f"Docker filled to {n}; {settle(berth, args.settle)}", file=sys.stderr)
            memory["docker"][0] += before - mem_available()
            memory["docker"][1] += len(names)
            fills.setdefault(n, {})["Engine API"] = (seconds, len(names))

        def berth_ready(n: int) -> None:
            listed = len(berth.rt.list())
            if listed < n:  # more: a failed create's container left behind (reported)
                raise RuntimeError(f"the runtime lists {listed} containers, expected {n}")
            own_memory[n] = containers_memory(berth)
            state = settle(berth, args.settle)  # also after Docker's fill
            print(f"filled to {n}; {state}; measuring", file=sys.stderr, flush=True)
            settled.append(f"- before measuring at {n}: {state}")
            # What the agent does on its own at this count (heartbeat with the metrics report,
            # reconcile pass, health refresh): CPU per second of the idle stack.
            # Beside it the containers' monitors, and dockerd's whole stack over the same
            # seconds (dockerd, containerd, its shims) when it holds its containers now.
            idle_before = tree_cpu_by_group(berth.pids())
            stack = {pid for root in berth.pids() for pid in descendants(root)}
            groups = {"Berth monitors": sorted(set(pids_mentioning(str(served.base))) - stack)}
            if docker and not args.sequential:
                groups["Docker: dockerd, containerd"] = descendants(dockerd.proc.pid)
                shims = set(pids_mentioning(str(dockerd.base))) - set(
                    groups["Docker: dockerd, containerd"]
                )
                groups["Docker: containerd shims"] = sorted(shims)
            others = idle_cpu(groups, args.idle)
            cpus[n]["idle"] = _cpu_since(berth, idle_before, args.idle)
            cpus[n]["idle"]["monitors"] = others.pop("Berth monitors")
            if others:
                cpus[n]["docker idle"] = others

        have = 0
        for n in counts:
            berth_fill(n, have)
            if docker and not args.sequential:
                docker_fill(n, have)
            have = n
            berth_ready(n)
            peer = None if args.sequential else docker
            results[n] = measure(
                berth, peer, dash, args.runs, f"{tag}{n}x", args.pause_peer, twin=twin
            )
        if docker and args.sequential:
            # Berth's side is over: its processes stop and its containers go, then Docker's
            # whole series runs on a machine that holds none of Berth's.
            served.stop()
            if twin_served is not None:
                twin_served.stop()
            have = 0
            for n in counts:
                docker_fill(n, have)
                have = n
                state = settle(berth, args.settle)
                settled.append(f"- before measuring Docker at {n}: {state}")
                for what, sides in measure(None, docker, dash, args.runs, f"{tag}{n}d").items():
                    results[n].setdefault(what, {}).update(sides)
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        pause = " --pause-peer" if args.pause_peer else " --sequential" if args.sequential else ""
        print(f"bench/scale.py --counts {args.counts} --runs {args.runs}{pause} ({stamp})")
        # The raw samples first: a failure while tabulating loses no run.
        print(json.dumps({"results": results, "fills": fills, "cpus": cpus}), file=sys.stderr)
        order = (
            "Berth's series, then Docker's (sequential)"
            if args.sequential
            else "Berth-then-Docker (peer paused)"
            if args.pause_peer
            else "interleaved"
        )
        memory_of = {k: tuple(v) for k, v in memory.items()}
        print(report(counts, results, fills, memory_of, args.runs, order))
        for n in counts:
            for what, label in (("fill", "per container filled"), ("idle", "per idle second")):
                parts = ", ".join(f"{g} {ms:.1f}" for g, ms in sorted(cpus[n][what].items()))
                total = sum(cpus[n][what].values())
                print(f"- Berth CPU ms {label} at {n}: {parts} (all {total:.1f})")
            if "docker idle" in cpus[n]:
                parts = ", ".join(f"{g} {ms:.1f}" for g, ms in cpus[n]["docker idle"].items())
                total = sum(cpus[n]["docker idle"].values())
                print(f"- Docker CPU ms per idle second at {n}: {parts} (all {total:.1f})")
        for n, (usage, pss) in own_memory.items():
            print(
                f"- Berth containers' own memory at {n}: cgroups {usage / n / 1e6:.2f} + "
                f"monitors' PSS {pss / n / 1e6:.2f} = {(usage + pss) / n / 1e6:.2f} MB per container"
            )
        print("\n".join(settled))
        print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print(f"API creates failed by the runtime (made again): {len(CREATE_FAILURES)}")
        for line in CREATE_FAILURES[:10]:
            print(f"  {line}")
    except Exception:
        for name in served.procs:
            print(f"--- {name} log ---\n{served.log(name)}", file=sys.stderr)
        raise
    finally:
        clean_up(base, dockerd, served, twin_served)
    return 0


if __name__ == "__main__":
    sys.exit(main())
