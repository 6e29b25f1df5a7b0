#!/usr/bin/env python
"""API to running, over HTTP as a client sees it: Berth's REST API next to the Docker Engine API.

Berth: a throwaway installation (bench/served_berth.py: SQLite, Redis with a password, the
agent on its own queue, prefix and state root, signed control channel) served by real web
servers. Each sample is `POST /api/v1/containers/?wait=30` with start=true and a bearer token
on a kept-alive http.client connection; the clock stops when the response says the container
is running. Docker: a private dockerd (bench/private_dockerd.py); each sample is
`POST /containers/create` + `POST /containers/{id}/start` on its unix socket, also kept alive.
Same image (busybox from Debian's busybox-static), same command (`sleep 1000`), same network
mode. The runs interleave (Berth on each server, then Docker) so that noise hits all sides
alike; containers are removed between runs, untimed.

    .venv/bin/python bench/api_http.py [--runs 30] [--network none|bridge]
        [--servers runserver,daphne] [--settings config.settings.dev] [--no-docker]
        [--env KEY=VALUE ...]   # e.g. BERTH_AGENT_FORKSERVER=0 for the agent without its fork server
"""

import argparse
import http.client
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from private_dockerd import Dockerd, call  # noqa: E402
from served_berth import REPO, SERVERS, ServedBerth  # noqa: E402

WARMUP = 3  # first runs of each side (caches, pool processes, dockerd's first container)


def berth_sample(conn: http.client.HTTPConnection, token: str, name: str, network: str):
    """One create+start through the REST API; returns (milliseconds, container id)."""
    body = {
        "team": "bench",
        "start": True,
        "spec": {
            "image": "busybox",
            "name": name,
            "command": ["sleep", "1000"],
            "network": {"mode": network},
        },
    }
    auth = {"Authorization": f"Bearer {token}"}
    start = time.perf_counter()
    status, data = call(conn, "POST", "/api/v1/containers/?wait=30", body, auth)
    elapsed = (time.perf_counter() - start) * 1000
    container = data.get("container", {}) if isinstance(data, dict) else {}
    if status != 200 or container.get("observed_state") != "running":
        raise RuntimeError(f"berth create: {status} {data!r:.500}")
    return elapsed, container["id"]


TICK = os.sysconf("SC_CLK_TCK")


def _group(pid: int) -> str:
    """Which part of Berth a process is: web, agent (its main process), pool, forkserver, redis."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return "gone"
    if b"forkserver" in cmd:
        return "forkserver"
    if b"redis-server" in cmd:
        return "redis"
    if b"celery" in cmd:
        return "agent"  # the main process and its pool share the command line
    if b"runserver" in cmd or b"daphne" in cmd:
        return "web"
    return "other"


def tree_cpu_by_group(root_pids) -> dict[str, float]:
    """CPU milliseconds so far per part (see _group) of these processes and their live
    descendants; the agent's pool processes, its children, are told apart as `pool`. The
    containers are not counted (their shims leave the tree), nor the runtime's short-lived
    forks (counted by their parent only once reaped): an estimate of the steady processes'
    work, compared like for like."""
    totals: dict[str, float] = {}
    todo, seen = [(pid, None) for pid in root_pids], set()
    while todo:
        pid, parent_group = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            group = _group(pid)
            if group == "agent" and parent_group == "agent":
                group = "pool"
            totals[group] = totals.get(group, 0) + (int(fields[11]) + int(fields[12])) * 1000 / TICK
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo += [(c, group) for c in map(int, (task / "children").read_text().split())]
        except (OSError, ValueError):
            continue
    return totals


def berth_remove(conn, token: str, cid) -> None:
    """Remove a container through the API and wait for it (untimed)."""
    auth = {"Authorization": f"Bearer {token}"}
    status, data = call(conn, "DELETE", f"/api/v1/containers/{cid}/?wait=30&force=true", None, auth)
    if status not in (200, 202):
        raise RuntimeError(f"berth remove: {status} {data!r:.300}")


def docker_sample(conn, name: str, network: str):
    """Create and start one container on the Engine API; returns (milliseconds, id)."""
    body = {
        "Image": "bb",
        "Cmd": ["sleep", "1000"],
        "HostConfig": {"NetworkMode": network},
    }
    start = time.perf_counter()
    status, data = call(conn, "POST", f"/containers/create?name={name}", body)
    if status != 201:
        raise RuntimeError(f"docker create: {status} {data!r:.300}")
    status, out = call(conn, "POST", f"/containers/{data['Id']}/start")
    elapsed = (time.perf_counter() - start) * 1000
    if status != 204:
        raise RuntimeError(f"docker start: {status} {out!r:.300}")
    return elapsed, data["Id"]


def docker_remove(conn, cid: str) -> None:
    """Remove a container (untimed)."""
    status, data = call(conn, "DELETE", f"/containers/{cid}?force=true")
    if status != 204:
        raise RuntimeError(f"docker remove: {status} {data!r:.300}")


def p90(values: list[float]) -> float:
    """The 90th percentile (inclusive method)."""
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def run(args, base: Path) -> dict[str, list[float]]:
    """Start both sides, interleave the samples, stop both; returns milliseconds per side."""
    results: dict[str, list[float]] = {}
    berth = ServedBerth(base / "berth", args.settings)
    berth.env.update(dict(item.split("=", 1) for item in args.env))
    (base / "berth").mkdir()
    dockerd = None
    try:
        berth.start(args.servers)
        conns = {s: http.client.HTTPConnection("127.0.0.1", berth.ports[s]) for s in args.servers}
        docker_conn = None
        if not args.no_docker:
            (base / "docker").mkdir()
            dockerd = Dockerd(base / "docker", bridge=args.network == "bridge")
            sys.path.insert(0, str(REPO))
            from runtime.images.busybox import build_rootfs_tar

            build_rootfs_tar(str(base / "docker" / "rootfs.tar"))
            dockerd.start(base / "docker" / "rootfs.tar", "bb")
            docker_conn = dockerd.connect()
        tag = secrets.token_hex(2)
        pids = [proc.pid for proc in berth.procs.values()]
        for i in range(WARMUP + args.runs):
            for server, conn in conns.items():
                before = tree_cpu_by_group(pids)
                ms, cid = berth_sample(conn, berth.token, f"{server[0]}{tag}{i}", args.network)
                after = tree_cpu_by_group(pids)
                berth_remove(conn, berth.token, cid)
                if i >= WARMUP:
                    results.setdefault(f"berth ({server})", []).append(ms)
                    cpu = {g: after[g] - before.get(g, 0) for g in after}
                    results.setdefault(f"berth CPU ({server})", []).append(sum(cpu.values()))
                    for group in ("web", "agent", "pool", "forkserver", "redis"):
                        results.setdefault(f"  CPU {group}", []).append(cpu.get(group, 0.0))
            if docker_conn is not None:
                ms, cid = docker_sample(docker_conn, f"bench{tag}{i}", args.network)
                docker_remove(docker_conn, cid)
                if i >= WARMUP:
                    results.setdefault("docker engine API", []).append(ms)
    except Exception:
        for name in berth.procs:
            print(f"--- {name} log ---\n{berth.log(name)}", file=sys.stderr)
        raise
    finally:
        try:
            if dockerd is not None:
                dockerd.stop()
        finally:
            berth.stop()
    return results


def report(args, results: dict[str, list[float]]) -> None:
    """Print medians, p90 and the ratios Berth / Docker."""
    print(
        f"API to running over HTTP, network {args.network}, {args.runs} runs, "
        f"settings {args.settings}, {' '.join(args.env)} {time.strftime('%Y-%m-%d %H:%M:%S %Z')}"
    )
    print(f"{'side':<22} {'median ms':>10} {'p90':>8} {'min':>8} {'max':>8} {'mean':>8}")
    for side, values in results.items():
        # CPU comes in clock ticks (10 ms here): its mean says more than its median.
        print(
            f"{side:<22} {statistics.median(values):>10.1f} {p90(values):>8.1f}"
            f" {min(values):>8.1f} {max(values):>8.1f} {statistics.mean(values):>8.1f}"
        )
    docker = results.get("docker engine API")
    if docker:
        for side, values in results.items():
            if side.startswith("berth ("):
                ratio = statistics.median(values) / statistics.median(docker)
                print(f"ratio {side} / docker (medians): {ratio:.2f}")
    print("target (issue 9): ratio at most 0.3")
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.json:
        Path(args.json).write_text(json.dumps(results))


def main() -> int:
    """Parse arguments, run, report; everything started here is stopped here."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--network", choices=["none", "bridge"], default="none")
    parser.add_argument("--servers", default="runserver,daphne", help=", ".join(SERVERS))
    parser.add_argument("--settings", default="config.settings.dev", help="as scripts/berth-up")
    parser.add_argument("--no-docker", action="store_true")
    parser.add_argument("--json", help="also write the samples (ms) to this file")
    parser.add_argument(
        "--env", action="append", default=[], help="KEY=VALUE for Berth's processes"
    )
    args = parser.parse_args()
    args.servers = [s for s in args.servers.split(",") if s]
    if unknown := set(args.servers) - set(SERVERS):
        parser.error(f"unknown servers: {', '.join(sorted(unknown))}")
    if os.geteuid() != 0:
        print("run as root: the agent and dockerd create namespaces and cgroups", file=sys.stderr)
        return 1
    # Short paths: dockerd's and containerd's unix sockets live under the base directory.
    base = Path(tempfile.mkdtemp(prefix="bh-", dir="/tmp"))
    try:
        results = run(args, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    report(args, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
