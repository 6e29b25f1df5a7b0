"""Benchmark: the network part of a container start (attach), with and without one -p.

Run as root:  .venv/bin/python bench/network_setup.py [--runs N]
Stand-in containers are `unshare --net sleep` processes (spawned before timing starts); the
timed part is NetworkManager.attach(): veth born in the netns, address, routes, nft rules,
hosts/resolv.conf and the state file. Docker's `docker run -d` (with and without -p) runs side
by side when a dockerd answers; Docker's figure is a whole start, so the ratio is an upper
bound on how much of a Docker start our network step would be.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.config import RuntimeConfig  # noqa: E402
from runtime.network import NetworkManager, ipam, nft, ruleset  # noqa: E402
from runtime.spec import NetworkSpec, PortMapping  # noqa: E402


def _free_subnet() -> str:
    """A /16 from 10.215-230.0.0 that no host route touches."""
    routes = ipam.host_routes()
    for n in range(215, 231):
        net = ipaddress.IPv4Network(f"10.{n}.0.0/16")
        if not any(net.overlaps(r) for r in routes):
            return str(net)
    raise SystemExit("no free /16 in 10.215-230.0.0")


def _spawn_netns_sleepers(count: int) -> list[subprocess.Popen]:
    own = os.stat("/proc/self/ns/net").st_ino
    procs = [subprocess.Popen(["unshare", "--net", "sleep", "1000"]) for _ in range(count)]
    for proc in procs:
        while os.stat(f"/proc/{proc.pid}/ns/net").st_ino == own:  # netns not made yet
            time.sleep(0.001)
    return procs


def _time_attaches(
    nm: NetworkManager,
    tmp: Path,
    runs: int,
    with_port: bool,
    tag: str,
    detaches: list | None = None,
) -> list[float]:
    """Attach `runs` stand-in containers; returns ms per attach (detach times go to `detaches`)."""
    procs = _spawn_netns_sleepers(runs)
    times = []
    try:
        for i, proc in enumerate(procs):
            d = tmp / f"{tag}{i}"
            d.mkdir()
            files = {"hosts": d / "hosts", "resolv.conf": d / "resolv.conf"}
            ports = [PortMapping(container_port=80)] if with_port else []
            start = time.perf_counter()
            nm.attach(
                f"{tag}{i:060d}", f"{tag}{i}", proc.pid, NetworkSpec(ports=ports), None, None, files
            )
            times.append((time.perf_counter() - start) * 1000)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        for i in range(runs):
            start = time.perf_counter()
            nm.detach(f"{tag}{i:060d}")
            if detaches is not None:
                detaches.append((time.perf_counter() - start) * 1000)
    return times


def _preload(nm: NetworkManager, tmp: Path, count: int) -> list[subprocess.Popen]:
    """Attach `count` long-lived stand-ins with one published port each (scale test)."""
    procs = _spawn_netns_sleepers(count)
    for i, proc in enumerate(procs):
        d = tmp / f"pre{i}"
        d.mkdir()
        files = {"hosts": d / "hosts", "resolv.conf": d / "resolv.conf"}
        spec = NetworkSpec(ports=[PortMapping(container_port=80)])
        nm.attach(f"pre{i:061d}", f"pre{i}", proc.pid, spec, None, None, files)
    return procs


def _time_rule_rewrite(prefix: str, subnet: str, count: int) -> float:
    """Median ms of one whole-table rewrite carrying `count` published ports."""
    net = ipaddress.IPv4Network(subnet)
    ports = [
        {
            "host_ip": "",
            "host_port": 20000 + i,
            "container_port": 80,
            "protocol": "tcp",
            "ip": str(net.network_address + 2),
        }
        for i in range(count)
    ]
    text = ruleset.render(prefix, [{"bridge": f"{prefix}0", "subnet": subnet}], ports)
    times = []
    for _ in range(20):
        start = time.perf_counter()
        nft.run(text)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _docker(runs: int, publish: bool) -> list[float] | None:
    if shutil.which("docker") is None:
        return None
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return None
    times = []
    for i in range(runs):
        args = ["docker", "run", "-d", "--name", f"berthbench{i}"]
        if publish:
            args += ["-p", "80"]
        start = time.perf_counter()
        done = subprocess.run([*args, "busybox", "sleep", "1000"], capture_output=True, text=True)
        if done.returncode != 0:
            print(f"docker run failed: {done.stderr.strip()}")
            return None
        times.append((time.perf_counter() - start) * 1000)
        subprocess.run(["docker", "rm", "-f", f"berthbench{i}"], capture_output=True)
    return times


def _restore_ip_forward(before: str) -> None:
    """Leave ip_forward as found unless a bridge (a running Berth) still needs it."""
    path = Path("/proc/sys/net/ipv4/ip_forward")
    bridges = [p for p in Path("/sys/class/net").iterdir() if (p / "bridge").is_dir()]
    if before == "0" and not bridges:
        path.write_text("0")


def main() -> None:
    """Run both measurements and print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument(
        "--preload", type=int, default=0, help="containers with one -p each attached beforehand"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    forward_before = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
    tmp = Path(tempfile.mkdtemp(prefix="berth-netbench-"))
    prefix = "nb" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(4))
    config = RuntimeConfig(
        root=tmp / "root",
        run_root=tmp / "run",
        prefix=prefix,
        extra={"default_subnet": _free_subnet()},
    )
    nm = NetworkManager(config)
    try:
        nm.ensure_default()
        _time_attaches(nm, tmp, 3, True, "w")  # warm-up: library loads, first bridge port
        preloaded = _preload(nm, tmp, args.preload)
        detaches: list[float] = []
        plain = _time_attaches(nm, tmp, args.runs, False, "a", detaches)
        published = _time_attaches(nm, tmp, args.runs, True, "p", detaches)
        rewrite = {
            n: _time_rule_rewrite(prefix, config.extra["default_subnet"], n) for n in (1, 200)
        }
    finally:
        for proc in locals().get("preloaded") or []:
            proc.kill()
            proc.wait()
        nm.purge()
        nm.close()
        shutil.rmtree(tmp, ignore_errors=True)
        _restore_ip_forward(forward_before)
    rows = [("berth attach", plain), ("berth attach -p", published), ("berth detach", detaches)]
    print(f"(with {args.preload} containers already attached, one -p each)")
    print(f"{'what':<28}{'median ms':>10}{'p90 ms':>10}{'runs':>6}")
    for name, values in rows:
        p90 = sorted(values)[int(len(values) * 0.9) - 1]
        print(f"{name:<28}{statistics.median(values):>10.2f}{p90:>10.2f}{len(values):>6}")
    for count, ms in rewrite.items():
        print(f"{'nft table rewrite, ' + str(count) + ' ports':<28}{ms:>10.2f}")
    target = 10.0
    for name, values in rows[:2]:
        verdict = "meets" if statistics.median(values) <= target else "MISSES"
        print(f"{name}: {verdict} the {target:.0f} ms target")
    docker_runs = min(args.runs, 20)
    docker_plain = _docker(docker_runs, False)
    if docker_plain is None:
        print("docker: no dockerd answers here (docker info failed); Docker columns skipped")
        return
    docker_pub = _docker(docker_runs, True)
    for (name, ours), theirs in zip(rows[:2], (docker_plain, docker_pub), strict=True):
        d = statistics.median(theirs)
        o = statistics.median(ours)
        print(
            f"{name} vs docker run -d{' -p' if 'p' in name[-2:] else ''}: {o:.2f} vs {d:.1f} ms (x{d / o:.1f})"
        )


if __name__ == "__main__":
    main()
