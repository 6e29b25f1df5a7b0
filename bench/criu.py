"""CRIU: checkpoint and restore through Berth vs Podman, and live-migration downtime (issue 11).

Usage: .venv/bin/python bench/criu.py [-n 5] [--no-podman] [--no-migrate]
       [--migrate-userns private|host] [--modes precopy,postcopy]

Workload: a busybox shell holding 64 MB of written memory (a 64 MB string), no network.
Part 1, same run: Berth's runtime API (what the host agent calls; `--userns host` and the
default, a user namespace of its own) and its command line, against
`podman container checkpoint` / `podman container restore` (runc; storage in a private
temporary root; criu 4.2 from /usr/local/sbin). Medians in ms, and Berth/Podman ratios.
Part 2: live migration between the two hosts of tests/fleet/fleet.py (two agents in their
own network namespaces, one control plane) of a busybox httpd whose shell holds the same
64 MB: clients in the root namespace fetch the page from both hosts' published port every few
ms; downtime = the longest gap between two answered requests. The source's own measure
(freeze to the target's "restored") is read from the audit event. Pre-copy and post-copy
(`mode` of the migrate call) take turns on the same container in the same run, two moves
each in a row (one each way); post-copy needs the host's user namespace (--migrate-userns
host, the default here; pre-copy alone also runs the default container, private).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime.api import Runtime  # noqa: E402
from runtime.config import RuntimeConfig  # noqa: E402
from runtime.images import ImageStore  # noqa: E402
from runtime.images.busybox import build_image, build_rootfs_tar  # noqa: E402

PREFIX = "bnchcr"
HOLD = 'x=$(head -c 67108864 /dev/zero | tr "\\0" a); echo ready; '
# busybox sh execs the last command of -c: a loop keeps the shell (and its 64 MB) alive.
IDLE = HOLD + "while :; do sleep 3600; done"
CRIU_DIR = "/usr/local/sbin"


def median(xs):
    """Median, NaN for no samples."""
    return statistics.median(xs) if xs else float("nan")


def ms(fn) -> float:
    """Milliseconds `fn` took."""
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def rss_kb(pid: int) -> int:
    """Resident memory of `pid` (kB)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_rss(pid_of, kb: int = 64 * 1024, timeout: float = 30) -> None:
    """Until the workload holds its 64 MB."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = pid_of()
        if pid and rss_kb(pid) >= kb:
            return
        time.sleep(0.1)
    raise RuntimeError("the workload never held 64 MB")


@contextlib.contextmanager
def berth_side():
    """Berth's runtime with the workload running; yields rounds(api: bool) -> (cp, restore)."""
    base = Path(tempfile.mkdtemp(prefix="berth-bench-criu-"))
    cfg = RuntimeConfig(root=base / "root", run_root=base / "run", prefix=PREFIX)
    rt = Runtime(cfg)
    env = dict(
        os.environ,
        BERTH_ROOT=str(cfg.root),
        BERTH_RUN_ROOT=str(cfg.run_root),
        BERTH_PREFIX=PREFIX,
        PATH=f"{CRIU_DIR}:{os.environ.get('PATH', '')}",
    )
    repo = Path(__file__).resolve().parents[1]
    count = iter(range(1 << 30))

    def cli(*args):
        subprocess.run(
            [sys.executable, "-m", "runtime", *args],
            env=env,
            cwd=repo,
            check=True,
            capture_output=True,
        )

    def one(api: bool, ref: str = "mem") -> tuple[float, float]:
        name = f"c{next(count)}"
        if api:
            cp = ms(lambda: rt.checkpoint(ref, name))
            rs = ms(lambda: rt.start(ref, checkpoint=name))
        else:
            cp = ms(lambda: cli("checkpoint", "create", ref, name))
            rs = ms(lambda: cli("start", "--checkpoint", name, ref))
        rt.checkpoint_remove(ref, name)
        assert rss_kb(rt.state(ref)["pid"]) >= 64 * 1024  # still the same 64 MB
        return cp, rs

    try:
        build_image(ImageStore(cfg))
        for name, userns in (("mem", "host"), ("mem-u", "private")):
            rt.run(
                {
                    "image": "busybox",
                    "name": name,
                    "command": ["sh", "-c", IDLE],
                    "network": {"mode": "none"},
                    # mem-u: the default since issue 14, a user namespace of its own
                    "namespaces": {"user": userns},
                }
            )
            wait_rss(lambda name=name: rt.state(name)["pid"])
        yield one
    finally:
        for st in rt.list():
            rt.delete(st["id"], force=True)
        # The prefix's own cgroup directories outlive its containers.
        for hierarchy in Path(cfg.cgroup_root).iterdir():
            with contextlib.suppress(OSError):
                os.rmdir(hierarchy / PREFIX)
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def podman_side():
    """Podman (runc, private storage) with the workload running; yields one() -> (cp, rs)."""
    base = Path(tempfile.mkdtemp(prefix="berth-bench-podman-"))
    env = dict(os.environ, PATH=f"{CRIU_DIR}:{os.environ.get('PATH', '')}")
    pm = ["podman", "--root", str(base / "root"), "--runroot", str(base / "run")]
    pm += ["--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", "runc"]

    def podman(*args, check=True) -> str:
        done = subprocess.run(
            [*pm, *args], env=env, capture_output=True, text=True, check=False, timeout=120
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout.strip()

    def one() -> tuple[float, float]:
        cp = ms(lambda: podman("container", "checkpoint", "mem"))
        rs = ms(lambda: podman("container", "restore", "mem"))
        return cp, rs

    try:
        build_rootfs_tar(str(base / "rootfs.tar"))
        podman("import", str(base / "rootfs.tar"), "localhost/berth-bench-bb")
        podman(
            "run", "-d", "--name", "mem", "--network", "none",
            "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096",
            "localhost/berth-bench-bb", "sh", "-c", IDLE,
        )  # fmt: skip
        wait_rss(lambda: int(podman("inspect", "-f", "{{.State.Pid}}", "mem") or 0))
        yield one
    finally:
        podman("rm", "-f", "-t", "0", "mem", check=False)
        podman("system", "reset", "-f", check=False)
        shutil.rmtree(base, ignore_errors=True)


def bench_pair(n: int, with_podman: bool) -> dict:
    """Berth API, Berth CLI and Podman, interleaved round by round (the load here varies)."""
    keys = ("berth (API)", "berth (API, userns)", "berth (CLI)", "podman (CLI)")
    out = {k: ([], []) for k in keys}
    with contextlib.ExitStack() as stack:
        berth = stack.enter_context(berth_side())
        podman = stack.enter_context(podman_side()) if with_podman else None
        for _ in range(n):
            for key, one in (
                ("berth (API)", lambda: berth(True)),
                ("berth (API, userns)", lambda: berth(True, "mem-u")),
                ("berth (CLI)", lambda: berth(False)),
                ("podman (CLI)", podman),
            ):
                if one is None:
                    continue
                cp, rs = one()
                out[key][0].append(cp)
                out[key][1].append(rs)
    return {k: v for k, v in out.items() if v[0]}


class Prober:
    """Clients fetching the page from both hosts' port; the longest gap between answers."""

    def __init__(self, addresses, port, threads_per_address=2, timeout=0.1):
        self.targets = [a for a in addresses for _ in range(threads_per_address)]
        self.port, self.timeout = port, timeout
        self.answers: list[float] = []
        self.failures: list[tuple[float, str, str]] = []  # (when, address, what), for long gaps
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(a,)) for a in self.targets]

    def _run(self, address):
        url = f"http://{address}:{self.port}/"
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(url, timeout=self.timeout) as r:
                    r.read()
                with self.lock:
                    self.answers.append(time.monotonic())
                time.sleep(0.005)
            except OSError as err:
                reason = getattr(err, "reason", err)
                with self.lock:
                    self.failures.append((time.monotonic(), address, type(reason).__name__))
                time.sleep(0.01)  # gently: the clients must not slow the hosts they measure

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()

    def longest_gap(self, since: float, until: float) -> float:
        """Longest time (ms) with no answer from either host in [since, until]."""
        return self.gap_window(since, until)[0]

    def gap_window(self, since: float, until: float) -> tuple[float, float, float]:
        """(length in ms, start, end) of that longest gap (CLOCK_MONOTONIC, the clock of the
        migration's phase marks: BERTH_MIGRATE_TRACE)."""
        times = sorted(t for t in self.answers if since <= t <= until)
        gaps = [(b - a, a, b) for a, b in zip(times, times[1:], strict=False)]
        length, start, end = max(gaps, default=(float("nan"), since, since))
        return length * 1000, start, end

    def failures_in(self, start: float, end: float) -> str:
        """What the clients met during [start, end]: per address, each kind of failure's
        count and the first and last time (ms from start)."""
        seen: dict = {}
        for when, address, what in self.failures:
            if start <= when <= end:
                first, last, count = seen.get((address, what), (when, when, 0))
                seen[(address, what)] = (first, when, count + 1)
        return "; ".join(
            f"{address} {what} x{count} at {(first - start) * 1000:.0f}-{(last - start) * 1000:.0f}"
            for (address, what), (first, last, count) in sorted(seen.items())
        )


def loadavg() -> str:
    """The 1-minute load average, printed beside each number (the machine is shared)."""
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def bench_migrate(n: int, userns: str = "host", modes=("precopy", "postcopy")) -> dict:
    """Migrate a 64 MB httpd back and forth between the fleet's two hosts, `n` moves per
    mode; returns per mode: client-seen downtimes, the API call's time, the audit's."""
    import json
    import secrets

    from tests.fleet.fleet import Fleet

    base = Path(f"/tmp/berth-fleet-bench-{secrets.token_hex(4)}")
    base.mkdir(mode=0o755)
    fleet = Fleet(base)
    out = {m: {"downtime": [], "source_downtime": [], "total": [], "load": []} for m in modes}
    label = {"precopy": "pre-copy", "postcopy": "post-copy"}
    try:
        fleet.start()
        a, b = fleet.hosts
        port = 20000 + int.from_bytes(os.urandom(2)) % 20000
        serve = "mkdir -p /www && echo hi > /www/index.html && " + HOLD
        serve += "httpd -f -p 80 -h /www; echo $x > /dev/null"
        body = {
            "team": fleet.team,
            "host": a.name,
            "spec": {
                "image": "busybox",
                "name": "mem-web",
                "command": ["sh", "-c", serve],
                "network": {"ports": [{"container_port": 80, "host_port": port}]},
                "namespaces": {"user": userns},
            },
        }
        _, row = fleet.api("POST", "containers/?wait=60", body, expect=200)
        row = row["container"]
        wait_rss(lambda: fleet.api("GET", f"containers/{row['id']}/", expect=200)[1]["pid"])
        with Prober([a.address, b.address], port) as probe:
            fleet.wait_until(lambda: probe.answers, 20, "httpd to answer")
            where = [b, a]
            # Two moves in a row per mode (one each way), n rounded up to even per mode.
            for i in range(len(modes) * 2 * ((n + 1) // 2)):
                to, mode = where[i % 2], modes[(i // 2) % len(modes)]
                t0 = time.monotonic()
                fleet.api("POST", f"containers/{row['id']}/migrate/",
                          {"host": to.name, "mode": mode}, expect=200, timeout=300)  # fmt: skip
                t1 = time.monotonic()
                fleet.wait_until(lambda t1=t1: any(t > t1 for t in probe.answers), 20, "answers")
                gap, start, end = probe.gap_window(t0, time.monotonic())
                out[mode]["downtime"].append(gap)
                print(f"  {mode} move {i}: gap {gap:.0f} ms, monotonic {start:.3f} to {end:.3f}")
                if gap > 500:  # what the clients met meanwhile (ms from the gap's start)
                    print(f"    clients during the gap: {probe.failures_in(start, end)}")
                out[mode]["total"].append((t1 - t0) * 1000)
                out[mode]["load"].append(loadavg())
                time.sleep(0.5)
        for (summary,) in fleet.sql(
            "SELECT summary FROM audit_auditevent WHERE action = 'container.migrate' "
            "AND summary LIKE '%moved%' ORDER BY id"
        ):
            got = json.loads(summary)
            keys = ("mode", "rounds", "dump_ms", "restore_ms", "downtime_ms", "pages_ms")
            print("  audit:", {k: got.get(k) for k in keys})
            for mode in modes:
                if got.get("mode") == label[mode] and "downtime_ms" in got:
                    out[mode]["source_downtime"].append(got["downtime_ms"])
        fleet.api("DELETE", f"containers/{row['id']}/?wait=60&force=1")
    finally:
        fleet.teardown()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5)
    parser.add_argument("--no-podman", action="store_true")
    parser.add_argument("--no-migrate", action="store_true")
    parser.add_argument(
        "--migrate-userns", choices=("private", "host"), default="host",
        help="the migrated container's user namespace (private: the default container, "
        "pre-copy only)",
    )  # fmt: skip
    parser.add_argument("--modes", default="precopy,postcopy", help="migration modes, in turn")
    parser.add_argument(
        "--phases", action="store_true",
        help="print each pre-copy move's phases, both hosts on one clock (BERTH_MIGRATE_TRACE)",
    )  # fmt: skip
    args = parser.parse_args()
    trace = None
    if args.phases:
        trace = Path(tempfile.mkstemp(prefix="berth-migrate-trace-")[1])
        os.environ["BERTH_MIGRATE_TRACE"] = str(trace)  # the fleet's agents inherit it
    modes = tuple(m for m in args.modes.split(",") if m)
    print(f"load average at start: {loadavg()}")
    pair = bench_pair(args.n, not args.no_podman and bool(shutil.which("podman")))
    print(f"64 MB workload, n={args.n}, medians (rounds interleaved)")
    print(f"{'':22}{'checkpoint (ms)':>16}{'restore (ms)':>14}{'sum (ms)':>10}")
    for name, (cp, rs) in pair.items():
        print(f"{name:22}{median(cp):16.1f}{median(rs):14.1f}{median(cp) + median(rs):10.1f}")
    if "podman (CLI)" in pair:
        pcp, prs = (median(x) for x in pair["podman (CLI)"])
        for name in ("berth (API)", "berth (API, userns)", "berth (CLI)"):
            bcp, brs = (median(x) for x in pair[name])
            print(
                f"{name}/podman: checkpoint {bcp / pcp:.2f}x, restore {brs / prs:.2f}x, "
                f"sum {(bcp + brs) / (pcp + prs):.2f}x"
            )
    print(f"load average after checkpoint/restore: {loadavg()}")
    if not args.no_migrate:
        found = bench_migrate(args.n, args.migrate_userns, modes)
        for mode, mig in found.items():
            print(
                f"live migration {mode}, 64 MB httpd (userns {args.migrate_userns}), "
                f"{len(mig['downtime'])} moves between two hosts (load {', '.join(mig['load'])})"
            )
            print(f"  downtime seen by clients: median {median(mig['downtime']):.0f} ms, "
                  f"max {max(mig['downtime'], default=float('nan')):.0f} ms")  # fmt: skip
            print(f"  source's freeze-to-restored: median {median(mig['source_downtime']):.0f} ms")
            print(f"  API call (whole migration): median {median(mig['total']):.0f} ms")
        if len(found) == 2:
            pre, post = (median(found[m]["downtime"]) for m in modes)
            print(f"  downtime {modes[1]}/{modes[0]}: {post / pre:.2f}x")
    if trace is not None:
        print_phases(trace)
        trace.unlink()
    return 0


def print_phases(trace: Path) -> None:
    """Each pre-copy move's marks (src: source agent, dst: target agent) in ms from the
    freeze, with the step from the mark before."""
    marks = []
    for line in trace.read_text().splitlines():
        when, pid, label = line.split(None, 2)
        marks.append((float(when), pid, label))
    marks.sort()
    moves, current = [], None
    for mark in marks:
        if mark[2] == "src:freeze":
            current = []
            moves.append(current)
        if current is not None and not (current and current[-1][2] == "dst:answered"):
            current.append(mark)
    for i, move in enumerate(moves):
        start = prev = move[0][0]
        print(
            f"phases of pre-copy move {i} (ms from the freeze at monotonic {start:.3f}, +step, "
            "pid, mark):"
        )
        for when, pid, label in move:
            print(f"  {(when - start) * 1000:8.1f} {(when - prev) * 1000:+7.1f}  {pid:>7}  {label}")
            prev = when


if __name__ == "__main__":
    sys.exit(main())
