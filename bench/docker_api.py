#!/usr/bin/env python
"""The docker CLI against Berth's Docker API listener and against dockerd, side by side.

Starts a throwaway Berth (bench/served_berth.py: Redis, SQLite, agent) with its Docker API
listener (`manage.py serve_docker_api`), and a private dockerd (bench/private_dockerd.py) with
the same busybox root filesystem imported as `busybox`. Then, with the real docker CLI:

1. `docker run -d --network none busybox sleep 600`, interleaved Berth / dockerd, wall time
   of the CLI process; target: Berth's median at most 0.5 of dockerd's.
2. `docker ps -a` with N containers on each side (created through each Engine API by a few
   threads, not timed; created, not started: 500 running containers would be 500 shims on each
   side); target: Berth no slower than dockerd.

Beside the wall time of each CLI call it reports the CPU time each side's server spent on it
(the process trees: Berth's Docker API listener, agent with its pool and Redis; dockerd with
containerd and the shims), which a loaded machine disturbs far less than wall time.

    .venv/bin/python bench/docker_api.py [--runs 20] [--containers 500] [--network none]
        [--settings config.settings.test]

Berth runs with test settings by default (DEBUG off, as in production; dev settings keep
every SQL query of a request in memory and log it).

Run as root. Everything started here is stopped by its pid; containers are removed by each
side's cleanup (served_berth.stop deletes the runtime's; dockerd's are force-removed through its
API before it stops, and what it left mounted under the run's directory is unmounted).
"""

import argparse
import http.client
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from private_dockerd import Dockerd, call  # noqa: E402
from served_berth import PY, REPO, ServedBerth, free_port, wait_until  # noqa: E402

WARMUP = 2
TEAM_LABEL = "io.berth.team=bench"
LOADS: list[str] = []  # the 1-minute load average at the start and at the end


def cli(env: dict, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    """Run the docker CLI; (milliseconds, result)."""
    start = time.perf_counter()
    done = subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=120)
    ms = (time.perf_counter() - start) * 1000
    if done.returncode:
        raise RuntimeError(f"docker {' '.join(args)}: {done.stderr.strip()}")
    return ms, done


TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu_ms(roots: list[int], marker: str) -> float:
    """CPU time (user + system, ms, reaped children included) of the processes under `roots`,
    and of those whose command line or environment names `marker` (the side's directory):
    both sides' shims detach from the daemon that started them."""
    parent, ticks, marked = {}, {}, set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            pid = int(stat.parent.name)
            if (
                marker.encode()
                in (stat.parent / "cmdline").read_bytes() + (stat.parent / "environ").read_bytes()
            ):
                marked.add(pid)
        except OSError:
            continue  # gone meanwhile
        fields = text[text.rindex(")") + 2 :].split()
        parent[pid] = int(fields[1])
        # utime, stime, cutime, cstime (fields 14-17 of proc(5))
        ticks[pid] = sum(int(v) for v in fields[11:15])
    tops = set(roots) | marked
    total = 0
    for pid in parent:
        walk = pid
        while walk in parent and walk not in tops:
            walk = parent[walk]
        if walk in tops:
            total += ticks[pid]
    return total * 1000 / TICK


def own_cpu_ms(pid: int) -> float:
    """CPU time (user + system, ms) of one process, its children not included."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / TICK


def timed(env: dict, side: tuple, *args: str) -> tuple[float, float, float]:
    """Run the docker CLI; (wall ms, CPU ms of the API server's process, CPU ms of the whole
    server side: daemon or listener, host agent, Redis, containerd, shims)."""
    roots, marker = side
    front, whole = own_cpu_ms(roots[0]), tree_cpu_ms(roots, marker)
    ms, _ = cli(env, *args)
    return ms, own_cpu_ms(roots[0]) - front, tree_cpu_ms(roots, marker) - whole


def berth_env(berth: ServedBerth, port: int, base: Path) -> dict:
    """The CLI's environment for Berth: DOCKER_HOST and the token in config.json HttpHeaders."""
    config = base / "docker-config-berth"
    config.mkdir()
    headers = {"HttpHeaders": {"Authorization": f"Bearer {berth.token}"}}
    (config / "config.json").write_text(json.dumps(headers))
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(config),
        "DOCKER_CONFIG": str(config),
        "DOCKER_HOST": f"tcp://127.0.0.1:{port}",
    }


def dockerd_env(dockerd: Dockerd, base: Path) -> dict:
    """The CLI's environment for the private dockerd."""
    config = base / "docker-config-dockerd"
    config.mkdir()
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(config),
        "DOCKER_CONFIG": str(config),
        "DOCKER_HOST": f"unix://{dockerd.sock}",
    }


def fill_berth(port: int, token: str, n: int, network: str) -> None:
    """n created containers through Berth's Engine API (8 at a time)."""
    tag = secrets.token_hex(2)

    def one(i):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        body = {
            "Image": "busybox",
            "Cmd": ["sleep", "600"],
            "Labels": {"io.berth.team": "bench"},
            "HostConfig": {"NetworkMode": network},
        }
        status, answer = call(
            conn, "POST", f"/v1.47/containers/create?name=ps{tag}{i}", body,
            {"Authorization": f"Bearer {token}"},
        )  # fmt: skip
        conn.close()
        if status != 201:
            raise RuntimeError(f"berth create: {status} {answer!r:.300}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(n)))


def fill_dockerd(dockerd: Dockerd, n: int, network: str) -> None:
    """n created containers through dockerd's Engine API (8 at a time)."""
    tag = secrets.token_hex(2)

    def one(i):
        conn = dockerd.connect()
        body = {"Image": "busybox", "Cmd": ["sleep", "600"], "HostConfig": {"NetworkMode": network}}
        status, answer = call(conn, "POST", f"/containers/create?name=ps{tag}{i}", body)
        conn.close()
        if status != 201:
            raise RuntimeError(f"dockerd create: {status} {answer!r:.300}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(n)))


def measure(args, base: Path) -> dict[str, list[float]]:
    """Start both sides, take the samples, stop both."""
    results: dict[str, list[float]] = {}
    berth = ServedBerth(base / "berth", args.settings)
    berth.env["BERTH_TEST_CHANNELS"] = "redis"  # test settings, but separate processes
    (base / "berth").mkdir()
    dockerd = None
    try:
        berth.start([])
        port = free_port()
        listener = berth._spawn(
            "docker-api", [str(PY), "manage.py", "serve_docker_api", "--bind", f"127.0.0.1:{port}"]
        )
        wait_until(
            lambda: " ready." in berth.log("docker-api") or listener.poll() is not None,
            60,
            "the Docker API listener",
        )
        (base / "docker").mkdir()
        dockerd = Dockerd(base / "docker", bridge=args.network == "bridge")
        sys.path.insert(0, str(REPO))
        from runtime.images.busybox import build_rootfs_tar

        build_rootfs_tar(str(base / "docker" / "rootfs.tar"))
        dockerd.start(base / "docker" / "rootfs.tar", "busybox")
        sides = {"berth": berth_env(berth, port, base), "dockerd": dockerd_env(dockerd, base)}
        roots = {
            # The listener first: its own CPU is the API server's (as dockerd's is dockerd's).
            "berth": (
                [listener.pid, *(p.pid for p in berth.procs.values() if p is not listener)],
                f"{base / 'berth'}/",
            ),
            "dockerd": ([dockerd.proc.pid], f"{base / 'docker'}/"),
        }
        run_args = ["run", "-d", "--network", args.network, "--label", TEAM_LABEL]
        run_args += ["busybox", "sleep", "600"]
        for i in range(WARMUP + args.runs):
            for side, env in sides.items():
                ms, front, whole = timed(env, roots[side], *run_args)
                if i >= WARMUP:
                    results.setdefault(f"run -d ({side})", []).append(ms)
                    results.setdefault(f"run -d api CPU ({side})", []).append(front)
                    results.setdefault(f"run -d all CPU ({side})", []).append(whole)
        # The list: N created containers on each side besides the run ones.
        have = WARMUP + args.runs
        fill_berth(port, berth.token, args.containers - have, args.network)
        fill_dockerd(dockerd, args.containers - have, args.network)
        for side, env in sides.items():
            _, listed = cli(env, "ps", "-a", "-q")
            results[f"listed ({side})"] = [float(len(listed.stdout.split()))]
        for i in range(WARMUP + args.runs):
            for side, env in sides.items():
                ms, front, whole = timed(env, roots[side], "ps", "-a")
                if i >= WARMUP:
                    results.setdefault(f"ps -a ({side})", []).append(ms)
                    results.setdefault(f"ps -a api CPU ({side})", []).append(front)
                    results.setdefault(f"ps -a all CPU ({side})", []).append(whole)
    except Exception:
        for name in berth.procs:
            print(f"--- {name} log ---\n{berth.log(name)}", file=sys.stderr)
        raise
    finally:
        try:
            if dockerd is not None:
                remove_dockerd_containers(dockerd)
                dockerd.stop()
                unmount_under(base / "docker")
        finally:
            berth.stop()
    return results


def remove_dockerd_containers(dockerd: Dockerd) -> None:
    """Every container of the private dockerd, force-removed (their network namespaces too)."""
    try:
        conn = dockerd.connect()
        status, listed = call(conn, "GET", "/containers/json?all=1")
        conn.close()
    except OSError:
        return
    if status != 200:
        return

    def one(item):
        conn = dockerd.connect()
        call(conn, "DELETE", f"/containers/{item['Id']}?force=1")
        conn.close()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, listed))


def unmount_under(path: Path) -> None:
    """Lazily unmount what dockerd left mounted under path (network namespace files)."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(str(path) + "/"):
            mounts.append(point)
    for point in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def report(args, results: dict[str, list[float]]) -> None:
    """Medians and the two ratios."""
    print(f"docker CLI, {args.runs} runs each (after {WARMUP} warm-up), network {args.network}")
    print(f"Berth settings {args.settings}; load average {' '.join(LOADS)}")
    print(f"{'what':<26} {'median ms':>10} {'min':>8} {'max':>8}")
    for what, values in results.items():
        if what.startswith("listed"):
            print(f"{what:<26} {int(values[0]):>10} containers")
            continue
        print(
            f"{what:<26} {statistics.median(values):>10.1f} {min(values):>8.1f} {max(values):>8.1f}"
        )
    for verb, target in (("run -d", "<= 0.5"), ("ps -a", "<= 1.0")):
        ratio = statistics.median(results[f"{verb} (berth)"]) / statistics.median(
            results[f"{verb} (dockerd)"]
        )
        print(f"ratio {verb} berth / dockerd: {ratio:.2f} (target {target})")
        for part in ("api", "all"):
            mine = statistics.median(results[f"{verb} {part} CPU (berth)"])
            theirs = statistics.median(results[f"{verb} {part} CPU (dockerd)"])
            # CPU times come in clock ticks (10 ms): a zero median means under one tick.
            print(
                f"ratio {verb} {part} CPU berth / dockerd: {mine / max(theirs, 1000 / TICK):.2f}"
                + (" (dockerd under one tick)" if not theirs else "")
            )


def main() -> int:
    """Parse arguments, run, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--containers", type=int, default=500)
    parser.add_argument("--network", choices=["none", "bridge"], default="none")
    parser.add_argument("--settings", default="config.settings.test")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: the agent and dockerd create namespaces and cgroups", file=sys.stderr)
        return 1
    if not (shutil.which("docker") and shutil.which("dockerd")):
        print("needs the docker CLI and dockerd", file=sys.stderr)
        return 1
    base = Path(tempfile.mkdtemp(prefix="bd-", dir="/tmp"))
    LOADS.append(Path("/proc/loadavg").read_text().split()[0])
    try:
        results = measure(args, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    LOADS.append(Path("/proc/loadavg").read_text().split()[0])
    report(args, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
