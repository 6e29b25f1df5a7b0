"""Memory and time per idle container: start N `sleep` containers, measure, remove them.

Usage: .venv/bin/python bench/idle_memory.py [-n 200]
Reports start time per container, MemAvailable drop per container and the shim's PSS
(/proc/<pid>/smaps_rollup). Docker is the peer when `dockerd` is installed; otherwise that
is printed and Berth is measured alone.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from runtime.api import Runtime  # noqa: E402
from runtime.config import RuntimeConfig  # noqa: E402
from runtime.container.fsutil import read_json  # noqa: E402
from runtime.images import ImageStore  # noqa: E402
from runtime.images.busybox import build_image  # noqa: E402

PREFIX = "bnchmem"


def mem_available() -> int:
    """MemAvailable in bytes."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def pss(pid: int) -> int:
    """Proportional set size of a process in bytes (0 if gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def settle() -> int:
    """Let the kernel settle, then read MemAvailable."""
    time.sleep(1.0)
    return mem_available()


DOCKER_PARENT = "/bnchdock"


def _docker_pids(name: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip().startswith(name):
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def bench_docker(base: Path, n: int, berth_mb: float) -> None:
    """The same N idle containers under a private dockerd (no bridge, no iptables), then removed."""
    from runtime.images.busybox import build_image_archive

    root = base / "docker"
    root.mkdir()
    sock = root / "docker.sock"
    env = dict(os.environ, DOCKER_HOST=f"unix://{sock}")
    log = open(root / "dockerd.log", "wb")  # noqa: SIM115 (closed below)
    daemon = subprocess.Popen(
        [
            "dockerd",
            "--data-root",
            str(root / "data"),
            "--exec-root",
            str(root / "exec"),
            "--pidfile",
            str(root / "docker.pid"),
            "-H",
            f"unix://{sock}",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--cgroup-parent",
            DOCKER_PARENT,
        ],
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    shims_before = set(_docker_pids("containerd-shim"))
    try:
        for _ in range(100):
            if subprocess.run(["docker", "info"], env=env, capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        archive = root / "busybox.tar"
        build_image_archive(str(archive))
        subprocess.run(
            ["docker", "load", "-i", str(archive)], env=env, check=True, capture_output=True
        )
        before = settle()
        t0 = time.perf_counter()
        for _ in range(n):
            subprocess.run(
                [
                    "docker",
                    "run",
                    "-d",
                    "--network",
                    "none",
                    "-m",
                    "64m",
                    "busybox",
                    "sleep",
                    "100000",
                ],
                env=env,
                check=True,
                capture_output=True,
            )
        elapsed = time.perf_counter() - t0
        after = settle()
        shims = [pss(p) for p in set(_docker_pids("containerd-shim")) - shims_before]
        mb = 1024 * 1024
        per = (before - after) / n / mb
        print(
            f"docker: {n} idle containers started in {elapsed:.2f} s ({elapsed / n * 1000:.1f} ms each)"
        )
        print(
            f"docker: MemAvailable drop {per:.2f} MB per container; containerd-shim PSS median "
            f"{statistics.median(shims) / mb if shims else 0:.2f} MB"
        )
        print(f"berth/docker memory per container: {berth_mb / per:.2f}x" if per > 0 else "")
    finally:
        ids = subprocess.run(["docker", "ps", "-aq"], env=env, capture_output=True).stdout.split()
        if ids:
            subprocess.run(
                ["docker", "rm", "-f", *[i.decode() for i in ids]], env=env, capture_output=True
            )
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            with contextlib.suppress(OSError):
                os.rmdir(hierarchy / DOCKER_PARENT.lstrip("/"))
        subprocess.run(["umount", "-R", str(root / "data")], capture_output=True)
        subprocess.run(["umount", "-R", str(root / "exec")], capture_output=True)


def main() -> int:
    """Start N idle containers, measure, clean up; then the Docker peer."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="number of idle containers")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="berth-bench-"))
    cfg = RuntimeConfig(root=base / "root", run_root=base / "run", prefix=PREFIX)
    rt = Runtime(cfg)
    spec = {
        "image": "busybox",
        "command": ["sleep", "100000"],
        "network": {"mode": "none"},
        "limits": {"memory": "64m"},
    }
    try:
        build_image(ImageStore(cfg))
        rt.delete(rt.run(spec)["id"], force=True)  # warm up imports and caches
        before = settle()
        t0 = time.perf_counter()
        ids = [rt.run(spec)["id"] for _ in range(args.n)]
        elapsed = time.perf_counter() - t0
        after = settle()
        shims, inits = [], []
        for cid in ids:
            info = read_json(rt.store.paths(cid).shim_file, {})
            shims.append(pss(info.get("shim", 0)))
            inits.append(pss(info.get("pid", 0)))
        t1 = time.perf_counter()
        listing = rt.list()
        list_ms = (time.perf_counter() - t1) * 1000
        mb = 1024 * 1024
        print(
            f"berth: {args.n} idle containers started in {elapsed:.2f} s ({elapsed / args.n * 1000:.1f} ms each)"
        )
        print(f"berth: MemAvailable drop {(before - after) / args.n / mb:.2f} MB per container")
        print(
            f"berth: shim PSS median {statistics.median(shims) / mb:.2f} MB, container init PSS median "
            f"{statistics.median(inits) / mb:.2f} MB"
        )
        print(f"berth: list() of {len(listing)} containers {list_ms:.1f} ms")
        if shutil.which("dockerd"):
            for st in rt.list():  # measure the peer on a quiet machine
                rt.delete(st["id"], force=True)
            bench_docker(base, args.n, berth_mb=(before - after) / args.n / mb)
        else:
            print(
                "docker: dockerd is not installed here; Berth measured alone "
                "(reference from performance.md: Docker 4.4 MB, Podman 1.2 MB per idle container)"
            )
    finally:
        for st in rt.list():
            rt.delete(st["id"], force=True)
        for hierarchy in cfg.cgroup_root.iterdir():
            with contextlib.suppress(OSError):
                os.rmdir(hierarchy / cfg.cgroup_parent)
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
