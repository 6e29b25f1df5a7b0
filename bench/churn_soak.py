#!/usr/bin/env python
"""Churn soak (issue 17): N containers kept alive while M are created and removed per minute.

A throwaway Berth (bench/served_berth.py: its own Redis, SQLite, agent with both lanes, web
server `manage.py runserver`) on this host. First `--keep` containers (busybox `sleep`, on the
default bridge network, one in four publishing a port) are created through the REST API and
kept running. Then, for `--minutes`, `--churn` containers a minute are created
(`POST /api/v1/containers/?wait=60`, timed) and removed again (`DELETE ...?force=true&wait=60`),
a cycle starting every 60/`--churn` seconds with up to `--parallel` (4) at once, and the
container list (`GET /api/v1/containers/`, timed) is read after each create. Every `--sample` seconds it prints the memory (PSS, MiB: pages that processes
share counted once) of the agent (its main process, both lanes' pools and fork servers) and of
the web server, and the host's count of the runtime's veths, cgroup directories and mounts next
to the number of live containers.

At the end it removes everything through the API, then reports what is left of the prefix
beyond what the host held with no container (veths, nft rules, mounts, cgroups, netns, state
files, processes: tests/e2e/leaks.py): it must be zero. It prints
p50/p99 of create and list and the memory at the start and the end of the churn. Exit status
1 when something leaked or an operation failed.

    .venv/bin/python bench/churn_soak.py [--keep 500] [--churn 50] [--minutes 60] [--sample 60]
"""

import argparse
import contextlib
import http.client
import json
import os
import random
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))
from served_berth import ServedBerth, wait_until  # noqa: E402

from tests.e2e.leaks import kernel_objects  # noqa: E402

TEAM = "bench"


class Api:
    """JSON calls on one kept-alive connection per thread."""

    def __init__(self, port: int, token: str):
        self.port, self.token = port, token
        self.local = threading.local()

    def call(self, method: str, path: str, body=None):
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        for attempt in (1, 2):
            conn = getattr(self.local, "conn", None)
            fresh = conn is None
            if fresh:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=180)
                self.local.conn = conn
            try:
                conn.request(method, path, json.dumps(body) if body is not None else None, headers)
                response = conn.getresponse()
                raw = response.read()
                break
            except (OSError, http.client.HTTPException):
                self.local.conn = None
                # A kept-alive connection the server closed meanwhile: once more, on a new one.
                if fresh or attempt == 2:
                    raise
        try:
            return response.status, json.loads(raw or b"null")
        except ValueError:
            return response.status, raw.decode(errors="replace")


_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def free_port() -> int:
    """A port nobody listens on that no container of this run publishes yet (a published
    port is an nft map element, not a socket: the kernel would hand it out again). Drawn
    below the kernel's ephemeral range, where other programs' "free port" picks land."""
    while True:
        port = random.randrange(20000, 32000)
        with _handed_out_lock:
            if port in _handed_out:
                continue
        try:
            with socket.socket() as s:
                s.bind(("0.0.0.0", port))
        except OSError:
            continue
        with _handed_out_lock:
            if port not in _handed_out:
                _handed_out.add(port)
                return port


def create(api: Api, name: str, host: str, publish: bool, retry=True) -> tuple[float, int]:
    """Create and start one container; returns (milliseconds, container id)."""
    spec = {"image": "busybox", "name": name, "command": ["sleep", "100000"]}
    if publish:
        spec["network"] = {"ports": [{"container_port": 80, "host_port": free_port()}]}
    body = {"team": TEAM, "host": host, "start": True, "spec": spec}
    began = time.perf_counter()
    status, data = api.call("POST", "/api/v1/containers/?wait=60", body)
    elapsed = (time.perf_counter() - began) * 1000
    error = (data.get("operation") or {}).get("error") or "" if isinstance(data, dict) else ""
    if publish and retry and "is already forwarded" in error:
        # Another installation on this shared host (another soak, a test) forwards that
        # port: not this Berth's failure. Said, removed, and tried once more elsewhere.
        print(f"create {name}: {error}; once more on another port", flush=True)
        remove(api, data["container"]["id"])
        return create(api, name + "p", host, publish, retry=False)
    if status != 200 or data["operation"]["state"] != "succeeded":
        raise RuntimeError(f"create {name}: {status} {data!r:.400}")
    return elapsed, data["container"]["id"]


def remove(api: Api, cid: int) -> None:
    status, data = api.call("DELETE", f"/api/v1/containers/{cid}/?force=true&wait=60")
    if status != 200 or data["operation"]["state"] != "succeeded":
        raise RuntimeError(f"remove {cid}: {status} {data!r:.400}")


def list_ms(api: Api) -> float:
    began = time.perf_counter()
    status, data = api.call("GET", "/api/v1/containers/")
    if status != 200:
        raise RuntimeError(f"list: {status} {data!r:.300}")
    return (time.perf_counter() - began) * 1000


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants that are not containers' shims (those setsid away)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in (task / "children").read_text().split()]
    sid = os.getsid(pid)
    return [p for p in out if _sid(p) == sid]


def _sid(pid: int) -> int:
    try:
        return os.getsid(pid)
    except OSError:
        return -1


def pss_mib(pids: list[int]) -> float:
    """Proportional set size of the processes together (pages they share counted once)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
    return total / 1024


def breakdown(pid: int) -> str:
    """PSS (MiB) of each process of the agent's tree, by what it runs."""
    parts = []
    for child in tree(pid):
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv if a]
        kind = "forkserver" if "runtime.forkserver" in words else " ".join(words[-3:])[:40]
        parts.append(f"{child} {kind}: {pss_mib([child]):.0f}")
    return "; ".join(parts)


def p(values, q: float) -> float:
    """The q-quantile (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered)) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=int, default=500, help="containers kept running")
    parser.add_argument("--churn", type=int, default=50, help="created and removed per minute")
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--sample", type=float, default=60, help="seconds between samples")
    parser.add_argument(
        "--parallel", type=int, default=4, help="churn cycles (create, list, remove) at once"
    )
    # Not dev: with DEBUG on, Django keeps the last 9,000 queries of every database
    # connection, which grows each process by tens of MiB before it levels off.
    parser.add_argument("--settings", default="config.settings.test")
    parser.add_argument(
        "--memtrace",
        metavar="FILE",
        help="the agent's main process appends what grew to FILE every --memtrace-seconds "
        "(agent/memtrace.py); with --memtrace-frames N also tracemalloc's top differences",
    )
    parser.add_argument("--memtrace-seconds", type=float, default=300)
    parser.add_argument("--memtrace-frames", type=int, default=0)
    parser.add_argument(
        "--memtrace-trim", action="store_true", help="malloc_trim(0) after each dump"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the agent makes containers")
    base = Path(tempfile.mkdtemp(prefix="berth-soak-"))
    (base / "berth").mkdir()
    berth = ServedBerth(base / "berth", args.settings)
    berth.env.setdefault("BERTH_AGENT_CONCURRENCY", "4")
    berth.env["BERTH_TEST_CHANNELS"] = "redis"  # test settings, but separate processes
    if args.memtrace:
        berth.env["BERTH_AGENT_MEMTRACE"] = str(Path(args.memtrace).resolve())
        berth.env["BERTH_AGENT_MEMTRACE_SECONDS"] = str(args.memtrace_seconds)
        berth.env["BERTH_AGENT_MEMTRACE_FRAMES"] = str(args.memtrace_frames)
        berth.env["BERTH_AGENT_MEMTRACE_TRIM"] = "1" if args.memtrace_trim else "0"
    failures = 0
    try:
        berth.start(["runserver"])
        wait_until(
            lambda: any(
                " ready." in line and "agent@" in line for line in berth.log("agent").splitlines()
            ),
            60,
            "the short lane's worker",
        )
        time.sleep(2)  # its first heartbeat
        api = Api(berth.ports["runserver"], berth.token)
        root, run_root = berth.base / "root", berth.base / "run"
        # What the host holds with no container (the bridge, the nft table): not leaks.
        _, warm = create(api, "warm", berth.host, True)
        remove(api, warm)
        baseline = kernel_objects(berth.prefix, berth.base, root, run_root)
        tag = secrets.token_hex(2)

        began = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            kept = list(
                pool.map(
                    lambda i: create(api, f"k{tag}{i}", berth.host, i % 4 == 0)[1],
                    range(args.keep),
                )
            )
        print(f"{args.keep} containers kept running, made in {time.monotonic() - began:.0f} s")

        agent_pid, web_pid = berth.procs["agent"].pid, berth.procs["runserver"].pid
        creates, lists, rows = [], [], []
        header = f"{'min':>5} {'agent PSS':>10} {'its main':>9} {'web PSS':>8} {'live':>5} {'veths':>6} {'cgroups':>8} {'mounts':>7} {'load':>5} {'UTC':>8}"
        print(header)

        def sample(live: int):
            objects = kernel_objects(berth.prefix, berth.base, root, run_root)
            row = (
                (time.monotonic() - start) / 60,
                pss_mib(tree(agent_pid)),
                pss_mib(tree(web_pid)),
                pss_mib([agent_pid]),
                live,
                len(objects["veth"]),
                len(objects["cgroup"]),
                len(objects["mount"]),
                os.getloadavg()[0],
            )
            rows.append(row)
            print(
                f"{row[0]:5.1f} {row[1]:10.0f} {row[3]:9.0f} {row[2]:8.0f} {row[4]:5d} {row[5]:6d} {row[6]:8d} {row[7]:7d} {row[8]:5.1f} {time.strftime('%H:%M:%S', time.gmtime()):>8}",
                flush=True,
            )

        print("agent processes (PSS MiB):", breakdown(agent_pid))
        start = time.monotonic()
        period = 60.0 / args.churn
        next_sample, n = start, 0
        failed = []

        def cycle(n: int) -> None:
            try:
                ms, cid = create(api, f"c{tag}{n}", berth.host, n % 4 == 0)
                creates.append(ms)
                lists.append(list_ms(api))
                remove(api, cid)
            except Exception as err:  # counted, and the soak goes on
                failed.append(n)
                print(f"churn {n}: {err}", flush=True)

        # A cycle starts every `period` seconds whatever the last one took, up to --parallel
        # at once: one after the other, a loaded host's 2-3 s cycles halved the asked pace.
        slots = threading.Semaphore(args.parallel)
        with ThreadPoolExecutor(args.parallel) as churners:
            due = start
            while time.monotonic() - start < args.minutes * 60:
                if time.monotonic() >= next_sample:
                    sample(len(kept))
                    next_sample += args.sample
                slots.acquire()
                n += 1
                churners.submit(cycle, n).add_done_callback(lambda _: slots.release())
                due += period
                time.sleep(max(0.0, due - time.monotonic()))
        failures += len(failed)
        sample(len(kept))
        print("agent processes (PSS MiB):", breakdown(agent_pid))

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda cid: remove(api, cid), kept))
        # Nothing of the prefix may be left once every container is gone.
        deadline = time.monotonic() + 30
        while True:
            now = kernel_objects(berth.prefix, berth.base, root, run_root)
            now["process"] -= set().union(
                *(
                    {x for x in now["process"] if x.split()[0] == str(pid)}
                    for pid in tree(agent_pid)
                )
            )
            leaked = {k: sorted(v - baseline.get(k, set())) for k, v in now.items()}
            leaked = {k: v for k, v in leaked.items() if v}
            if not leaked or time.monotonic() > deadline:
                break
            time.sleep(1)

        print()
        print(
            f"churn: {len(creates)} created and removed in {args.minutes:g} min "
            f"({len(creates) / args.minutes:.0f} a minute, {args.churn} asked; {failures} "
            f"failed) with {args.keep} kept running"
        )
        print(
            f"create+start (POST ?wait) ms: p50 {statistics.median(creates):.0f}, "
            f"p99 {p(creates, 0.99):.0f}"
        )
        print(
            f"list (GET /containers/) ms: p50 {statistics.median(lists):.0f}, "
            f"p99 {p(lists, 0.99):.0f}"
        )
        first, last = rows[0], rows[-1]
        print(
            f"PSS MiB: agent {first[1]:.0f} -> {last[1]:.0f} (max {max(r[1] for r in rows):.0f}; "
            f"its main process {first[3]:.0f} -> {last[3]:.0f}), "
            f"web {first[2]:.0f} -> {last[2]:.0f} (max {max(r[2] for r in rows):.0f})"
        )
        print(
            f"load average (1 min) over the churn: {min(r[8] for r in rows):.1f} to "
            f"{max(r[8] for r in rows):.1f}, mean {statistics.mean(r[8] for r in rows):.1f}"
        )
        print(
            "leaked after removing everything: "
            + (json.dumps(leaked, indent=1) if leaked else "nothing (0 of each kind)")
        )
        return 1 if leaked or failures else 0
    finally:
        berth.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
