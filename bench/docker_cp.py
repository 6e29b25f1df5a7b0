#!/usr/bin/env python
"""`docker cp` through Berth's Docker API listener and through dockerd, side by side.

Starts a throwaway Berth with its Docker API listener and a private dockerd, as
bench/docker_api.py does, and on each side one running busybox container holding a file of
`--mib` MiB of zeros and one exited container. Then, interleaved Berth / dockerd, with the
real docker CLI: the big file out of the running container, a 1 MiB file out, the big file
back in, and a small file into the exited container. Wall time of the CLI process (median),
and the CPU time the serving side spent (user + system of Berth's web, listener and agent
process trees, or of dockerd's and its shims', from /proc/PID/stat) per call.

    .venv/bin/python bench/docker_cp.py [--runs 5] [--mib 80]

Run as root. Everything started here is stopped by its pid (bench/docker_api.py's cleanup).
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from docker_api import (  # noqa: E402
    TEAM_LABEL,
    berth_env,
    cli,
    dockerd_env,
    remove_dockerd_containers,
    unmount_under,
)
from private_dockerd import Dockerd  # noqa: E402
from served_berth import PY, REPO, ServedBerth, free_port, wait_until  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu(roots: list[int]) -> float:
    """Seconds of user + system CPU of the processes under `roots` (themselves included) and
    of their waited-for children."""
    parents, cpu = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = sum(int(x) for x in fields[11:15]) / TICKS
    wanted = set(roots)
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in wanted and pid not in wanted:
                wanted.add(pid)
                changed = True
    return sum(cpu.get(pid, 0.0) for pid in wanted)


def calls(name: str, big: Path, small: Path, out: Path) -> dict[str, list[str]]:
    """The docker cp command lines of one side (its containers are <name>-run, <name>-off)."""
    return {
        "cp big out": ["cp", f"{name}-run:/tmp/big", str(out / f"{name}-big")],
        "cp 1 MiB out": ["cp", f"{name}-run:/tmp/small", str(out / f"{name}-small")],
        "cp big in": ["cp", str(big), f"{name}-run:/tmp/big-in"],
        "cp into exited": ["cp", str(small), f"{name}-off:/tmp/"],
    }


def measure(args, base: Path) -> dict[str, list[float]]:
    """Start both sides, take the samples, stop both."""
    results: dict[str, list[float]] = {}
    berth = ServedBerth(base / "berth", "config.settings.dev")
    (base / "berth").mkdir()
    dockerd = None
    big, small, out = base / "big", base / "small", base / "out"
    out.mkdir()
    with open(big, "wb") as f:
        f.truncate(args.mib << 20)
    small.write_bytes(b"s" * (1 << 20))
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
        dockerd = Dockerd(base / "docker", bridge=False)
        sys.path.insert(0, str(REPO))
        from runtime.images.busybox import build_rootfs_tar

        build_rootfs_tar(str(base / "docker" / "rootfs.tar"))
        dockerd.start(base / "docker" / "rootfs.tar", "busybox")
        sides = {"berth": berth_env(berth, port, base), "dockerd": dockerd_env(dockerd, base)}
        # Each serving process tree apart (Berth: the listener, which runs the Docker API's
        # views in-process, the web server, the agent), summed per side.
        servers = {
            "berth": lambda: {n: [p.pid] for n, p in berth.procs.items() if n != "redis"},
            "dockerd": lambda: {"dockerd": [dockerd.proc.pid]},
        }
        fill = f"dd if=/dev/zero of=/tmp/big bs=1M count={args.mib} && head -c 1048576 /tmp/big"
        for side, env in sides.items():
            common = ["--network", "none", "--label", TEAM_LABEL]
            cli(env, "run", "-d", "--name", f"{side}-run", *common, "busybox", "sleep", "600")
            cli(env, "exec", f"{side}-run", "sh", "-c", f"{fill} > /tmp/small")
            cli(env, "run", "--name", f"{side}-off", *common, "busybox", "true")
        for i in range(1 + args.runs):
            for side, env in sides.items():
                for what, command in calls(side, big, small, out).items():
                    trees = servers[side]()
                    before = {n: tree_cpu(pids) for n, pids in trees.items()}
                    ms, _ = cli(env, *command)
                    spent = {n: (tree_cpu(pids) - before[n]) * 1000 for n, pids in trees.items()}
                    if i:  # the first round warms up
                        results.setdefault(f"{what} ({side})", []).append(ms)
                        cpu = sum(spent.values())
                        results.setdefault(f"{what} cpu ({side})", []).append(cpu)
                        if len(spent) > 1:
                            for name, value in spent.items():
                                key = f"{what} cpu {name} ({side})"
                                results.setdefault(key, []).append(value)
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


def report(args, results: dict[str, list[float]]) -> None:
    """Medians and Berth / dockerd ratios."""
    print(f"docker cp, {args.runs} runs each (after 1 warm-up), big file {args.mib} MiB")
    print(f"load average before: {args.load}, after: {os.getloadavg()}")
    print(f"{'what':<32} {'median ms':>10} {'min':>8} {'max':>8}")
    for what, values in results.items():
        med = statistics.median(values)
        print(f"{what:<32} {med:>10.1f} {min(values):>8.1f} {max(values):>8.1f}")
    for what in sorted({k.rsplit(" (", 1)[0] for k in results}):
        berth, dockerd = results.get(f"{what} (berth)"), results.get(f"{what} (dockerd)")
        if berth and dockerd and statistics.median(dockerd):
            ratio = statistics.median(berth) / statistics.median(dockerd)
            print(f"ratio {what} berth / dockerd: {ratio:.2f}")


def main() -> int:
    """Parse arguments, run, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mib", type=int, default=80)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: the agent and dockerd create namespaces and cgroups", file=sys.stderr)
        return 1
    if not (shutil.which("docker") and shutil.which("dockerd")):
        print("needs the docker CLI and dockerd", file=sys.stderr)
        return 1
    args.load = os.getloadavg()
    base = Path(tempfile.mkdtemp(prefix="bcp-", dir="/tmp"))
    try:
        results = measure(args, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    report(args, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
