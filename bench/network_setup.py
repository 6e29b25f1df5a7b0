"""Benchmark: the network part of a container start (attach), with and without one -p.

Run as root:  .venv/bin/python bench/network_setup.py [--runs N]
Stand-in containers are `unshare --net sleep` processes (spawned before timing starts); the
timed part is NetworkManager.attach(): veth born in the netns, address, routes, nft rules,
hosts/resolv.conf and the state file. Then whole starts: Berth's `run -d` (runtime.api) and
Docker's `docker run -d`, each with and without one -p, side by side. When no dockerd answers,
a private one is started in its own network and mount namespaces (so its bridge, iptables
chains and mounts never reach the host) and stopped by its PID at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from procs import pids_mentioning  # noqa: E402

from runtime.config import RuntimeConfig  # noqa: E402
from runtime.images.busybox import build_rootfs_tar  # noqa: E402
from runtime.network import NetworkManager, ipam, nft, ruleset  # noqa: E402
from runtime.spec import ContainerSpec, NetworkSpec, PortMapping  # noqa: E402


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


class Docker:
    """A dockerd to compare with: the one that answers, or a private one started (and stopped) here.

    The private dockerd runs in its own network and mount namespaces, so its docker0 bridge,
    iptables (nft) chains, ip_forward and overlay mounts never touch the host's; only its
    cgroups (under a `bvdock...` parent) are shared, and they are removed afterwards.
    """

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.host: str | None = None
        self.proc: subprocess.Popen | None = None
        self.cgroup_parent = "bvdock" + "".join(
            secrets.choice(string.ascii_lowercase) for _ in range(4)
        )
        self.image = f"bvbench{secrets.token_hex(3)}"
        self.names: list[str] = []
        self.before: dict[str, str] = {}

    def cli(self, *args: str, **kw) -> subprocess.CompletedProcess:
        """Run the docker command line against this daemon."""
        host = ["-H", self.host] if self.host else []
        return subprocess.run(["docker", *host, *args], capture_output=True, text=True, **kw)

    def start(self) -> str:
        """Find or start a dockerd and import the busybox rootfs; returns a one-line description."""
        if shutil.which("docker") is None or shutil.which("dockerd") is None:
            raise RuntimeError("docker or dockerd is not installed")
        if self.cli("info").returncode == 0:
            desc = "the dockerd that already answers"
        else:
            desc = self._start_private()
        rootfs = self.tmp / "busybox-rootfs.tar"
        build_rootfs_tar(rootfs)
        done = self.cli("import", str(rootfs), f"{self.image}:latest")
        if done.returncode != 0:
            raise RuntimeError(f"docker import failed: {done.stderr.strip()}")
        return desc

    def _start_private(self) -> str:
        self.before = _host_firewall()
        root = self.tmp / "docker"
        root.mkdir()
        sock = root / "docker.sock"
        self.host = f"unix://{sock}"
        bip = _free_bip()
        argv = [
            "unshare", "--net", "--mount", "--propagation", "private",
            "dockerd",
            "--data-root", str(root / "data"),
            "--exec-root", str(root / "exec"),
            "--pidfile", str(root / "docker.pid"),
            "-H", self.host,
            "--bip", bip,
            "--iptables=true",
            "--cgroup-parent", f"/{self.cgroup_parent}",
        ]  # fmt: skip
        with open(root / "dockerd.log", "wb") as log:
            # unshare execs dockerd in place: self.proc.pid is dockerd's PID.
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while self.cli("info").returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = (root / "dockerd.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"private dockerd did not answer:\n{tail}")
            time.sleep(0.2)
        version = self.cli("version", "--format", "{{.Server.Version}}").stdout.strip()
        return f"private dockerd {version} (pid {self.proc.pid}, bridge {bip}, own netns)"

    def time_runs(self, runs: int, publish: bool) -> list[float]:
        """ms per `docker run -d [-p 80] IMAGE sleep 1000`; each container removed untimed."""
        times = []
        for i in range(runs):
            name = f"{self.image}{'p' if publish else 'a'}{i}"
            args = ["run", "-d", "--name", name] + (["-p", "80"] if publish else [])
            self.names.append(name)
            start = time.perf_counter()
            done = self.cli(*args, self.image, "sleep", "1000")
            times.append((time.perf_counter() - start) * 1000)
            if done.returncode != 0:
                raise RuntimeError(f"docker run failed: {done.stderr.strip()}")
            self.cli("rm", "-f", name)
        return times

    def stop(self) -> list[str]:
        """Remove what was made here, stop a private dockerd by PID; returns what is left over."""
        if self.names:
            self.cli("rm", "-f", *self.names)
        self.cli("rmi", "-f", f"{self.image}:latest")
        if self.proc is None:
            return []
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in pids_mentioning(str(self.tmp)):  # a containerd or shim it left running
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _remove_cgroup_tree(self.cgroup_parent)
        left = [f"cgroup {p}" for p in Path("/sys/fs/cgroup").glob(f"*/{self.cgroup_parent}")]
        after = _host_firewall()
        left += [
            f"host {k} changed"
            for k in sorted(set(self.before) | set(after))
            if self.before.get(k) != after.get(k)
        ]
        if Path("/sys/class/net/docker0").exists():
            left.append("docker0 on the host")
        return left


def _host_firewall() -> dict[str, str]:
    """The host's iptables-nft tables (the ones dockerd writes), by name, as nft prints them."""
    found = {}
    for family in ("ip", "ip6"):
        for table in ("filter", "nat", "mangle", "raw"):
            done = subprocess.run(
                ["nft", "list", "table", family, table], capture_output=True, text=True
            )
            if done.returncode == 0:
                found[f"{family} {table}"] = done.stdout
    return found


def _free_bip() -> str:
    """Docker's bridge address: 10.250.0.1/24 unless a host route touches it (then the next)."""
    routes = ipam.host_routes()
    for n in range(250, 255):
        net = ipaddress.IPv4Network(f"10.{n}.0.0/24")
        if not any(net.overlaps(r) for r in routes):
            return f"10.{n}.0.1/24"
    raise RuntimeError("no free /24 in 10.250-254.0.0 for Docker's bridge")


def _remove_cgroup_tree(name: str) -> None:
    """rmdir `name` and its sub-groups in every hierarchy, deepest first."""
    for top in Path("/sys/fs/cgroup").glob(f"*/{name}"):
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def _time_berth_runs(rt, runs: int, publish: bool) -> list[float]:
    """ms per Berth `run -d` (Runtime.run: created and started) of busybox sleep, as Docker's."""
    network = {"ports": [{"container_port": 80}]} if publish else {}
    times = []
    for _ in range(runs):
        spec = ContainerSpec.from_dict(
            {"image": "busybox", "command": ["sleep", "1000"], "network": network}
        )
        start = time.perf_counter()
        state = rt.run(spec)
        times.append((time.perf_counter() - start) * 1000)
        rt.delete(state["id"], force=True)
    return times


def _restore_ip_forward(before: str) -> None:
    """Leave ip_forward as found unless a bridge (a running Berth) still needs it."""
    path = Path("/proc/sys/net/ipv4/ip_forward")
    bridges = [p for p in Path("/sys/class/net").iterdir() if (p / "bridge").is_dir()]
    if before == "0" and not bridges:
        path.write_text("0")


def _berth_full_runs(config: RuntimeConfig, nm: NetworkManager, runs: int) -> dict:
    """Berth `run -d` with and without -p through runtime.api (skipped when it cannot load)."""
    try:
        from runtime.api import Runtime
        from runtime.images import ImageStore
        from runtime.images.busybox import build_image
    except ImportError as err:
        print(f"berth run -d skipped: {err}")
        return {}
    rt = Runtime(config, networks=nm)
    try:
        build_image(ImageStore(config))
        _time_berth_runs(rt, 2, True)  # warm-up
        return {
            "berth run -d": _time_berth_runs(rt, runs, False),
            "berth run -d -p": _time_berth_runs(rt, runs, True),
        }
    finally:
        for c in rt.list():
            with contextlib.suppress(Exception):
                rt.delete(c["id"], force=True)
        _remove_cgroup_tree(config.cgroup_parent)


def _row(name: str, values: list[float]) -> str:
    p90 = sorted(values)[max(int(len(values) * 0.9) - 1, 0)]
    return f"{name:<28}{statistics.median(values):>10.2f}{p90:>10.2f}{len(values):>6}"


def main() -> None:
    """Run the measurements (Berth and Docker, one run) and print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--docker-runs", type=int, default=20)
    parser.add_argument("--no-docker", action="store_true", help="measure Berth only")
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
    rows: dict[str, list[float]] = {}
    docker_rows: dict[str, list[float]] = {}
    docker = Docker(tmp)
    leftovers: list[str] = []
    try:
        nm.ensure_default()
        _time_attaches(nm, tmp, 3, True, "w")  # warm-up: library loads, first bridge port
        preloaded = _preload(nm, tmp, args.preload)
        detaches: list[float] = []
        rows["berth attach"] = _time_attaches(nm, tmp, args.runs, False, "a", detaches)
        rows["berth attach -p"] = _time_attaches(nm, tmp, args.runs, True, "p", detaches)
        rows["berth detach"] = detaches
        rewrite = {
            n: _time_rule_rewrite(prefix, config.extra["default_subnet"], n) for n in (1, 200)
        }
        rows.update(_berth_full_runs(config, nm, args.docker_runs))
        if not args.no_docker:
            try:
                print(f"docker: {docker.start()}")
                docker.time_runs(2, True)  # warm-up: first container, docker-proxy binary
                docker_rows["docker run -d"] = docker.time_runs(args.docker_runs, False)
                docker_rows["docker run -d -p"] = docker.time_runs(args.docker_runs, True)
            except RuntimeError as err:
                print(f"docker columns skipped: {err}")
    finally:
        leftovers = docker.stop()
        for proc in locals().get("preloaded") or []:
            proc.kill()
            proc.wait()
        nm.purge()
        nm.close()
        shutil.rmtree(tmp, ignore_errors=True)
        _restore_ip_forward(forward_before)
    print(f"(with {args.preload} containers already attached, one -p each)")
    print(f"{'what':<28}{'median ms':>10}{'p90 ms':>10}{'runs':>6}")
    for name, values in {**rows, **docker_rows}.items():
        print(_row(name, values))
    for count, ms in rewrite.items():
        print(f"{'nft table rewrite, ' + str(count) + ' ports':<28}{ms:>10.2f}")
    target = 10.0
    for name in ("berth attach", "berth attach -p"):
        verdict = "meets" if statistics.median(rows[name]) <= target else "MISSES"
        print(f"{name}: {verdict} the {target:.0f} ms target")
    pairs = [
        ("berth attach", "docker run -d"),
        ("berth attach -p", "docker run -d -p"),
        ("berth run -d", "docker run -d"),
        ("berth run -d -p", "docker run -d -p"),
    ]
    for ours, theirs in pairs:
        if ours in rows and theirs in docker_rows:
            o, d = statistics.median(rows[ours]), statistics.median(docker_rows[theirs])
            print(f"{ours} vs {theirs}: {o:.2f} vs {d:.1f} ms (Docker takes x{d / o:.1f})")
    if "berth run -d -p" in rows and len(docker_rows) == 2:
        ours = statistics.median(rows["berth run -d -p"]) - statistics.median(rows["berth run -d"])
        theirs = statistics.median(docker_rows["docker run -d -p"]) - statistics.median(
            docker_rows["docker run -d"]
        )
        print(f"cost of one -p on a whole start: berth {ours:+.2f} ms, docker {theirs:+.1f} ms")
    if leftovers:
        print(f"WARNING: left behind by the Docker comparison: {leftovers}")
    elif docker.proc is not None:
        print("private dockerd stopped; host nft tables, links and cgroups as before")


if __name__ == "__main__":
    main()
