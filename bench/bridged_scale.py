#!/usr/bin/env python
"""Bridged containers at 10 and 1,000 per host: Berth's run and remove next to Docker's.

bench/scale.py fills both with `--network none` containers; this one fills them with idle
busybox `sleep` containers on the default bridge (32 MiB memory limit each), as `docker run -d`
makes them, and at each count measures, interleaved (medians of --runs):

  run (create+start)     Runtime.run() in the fork server (runtime/forkserver.py), as the
                         agent calls it                      | Engine create + start
  remove (stopped)       Runtime.delete() of a killed one    | Engine DELETE of a killed one
  kernel: veth + port    a veth pair made and put on the bridge by pyroute2, then deleted:
                         what the kernel alone charges per container at that count (a Linux
                         bridge's port add walks its ports), the same for both

and prints each row's growth from the first count to the last, and Berth / Docker. Berth runs
in its own state root and prefix with its default network on a free /16; the private dockerd
(bench/private_dockerd.py) gets a docker0 on another free /16, no iptables rules, and is
stopped by its PID. Every container, veth, bridge and cgroup made is removed at the end.

    sudo .venv/bin/python bench/bridged_scale.py [--counts 10,1000] [--runs 15] [--clients 8]
        [--no-docker]
"""

import argparse
import contextlib
import ipaddress
import os
import secrets
import shutil
import statistics
import string
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from private_dockerd import Dockerd, call, create_started  # noqa: E402

from runtime.network import ipam  # noqa: E402

LIMIT = 32 * 1024 * 1024
COMMAND = ["sleep", "100000"]


def free_subnets(count: int) -> list[str]:
    """`count` /16s of 10.215-240.0.0 that no host route touches."""
    routes = ipam.host_routes()
    found = []
    for n in range(215, 241):
        net = ipaddress.IPv4Network(f"10.{n}.0.0/16")
        if not any(net.overlaps(r) for r in routes):
            found.append(str(net))
            if len(found) == count:
                return found
    raise SystemExit("no free /16 left in 10.215-240.0.0")


class BerthSide:
    """Berth's runtime on a state root and prefix of this run, driven as the agent drives it."""

    def __init__(self, base: Path, prefix: str, subnet: str):
        from runtime.api import Runtime
        from runtime.config import RuntimeConfig
        from runtime.forkserver import LeanRuntime
        from runtime.images import ImageStore
        from runtime.images.busybox import build_image

        self.config = RuntimeConfig(
            root=base / "root",
            run_root=base / "run",
            prefix=prefix,
            extra={"default_subnet": subnet},
        )
        self.runtime = Runtime(self.config)
        build_image(ImageStore(self.config))
        self.rt = LeanRuntime(self.runtime)
        self.made = 0

    def run(self) -> str:
        self.made += 1
        spec = {
            "image": "busybox",
            "name": f"{self.config.prefix}-{self.made}",
            "command": COMMAND,
            "limits": {"memory": LIMIT},
        }
        return self.rt.run(spec)["id"]

    def kill(self, cid: str) -> None:
        self.rt.kill(cid)

    def remove(self, cid: str) -> None:
        self.rt.delete(cid, force=True)

    def bridge(self) -> str:
        return f"{self.config.prefix}0"

    def cleanup(self) -> None:
        for state in self.runtime.list():
            with contextlib.suppress(Exception):
                self.runtime.delete(state["id"], force=True)
        with contextlib.suppress(Exception):
            self.runtime.networks.purge()
        for top in Path("/sys/fs/cgroup").glob(f"*/{self.config.cgroup_parent}"):
            for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)


class DockerSide:
    """The private dockerd through its Engine API, containers on its docker0."""

    def __init__(self, dockerd: Dockerd):
        self.dockerd = dockerd
        self.conn = dockerd.connect()

    def run(self, conn=None) -> str:
        conn = conn or self.conn
        body = {"Image": "bb", "Cmd": COMMAND, "HostConfig": {"Memory": LIMIT}}
        return create_started(conn, body)

    def kill(self, cid: str) -> None:
        call(self.conn, "POST", f"/containers/{cid}/kill")
        call(self.conn, "POST", f"/containers/{cid}/wait")

    def remove(self, cid: str) -> None:
        status, data = call(self.conn, "DELETE", f"/containers/{cid}")
        if status != 204:
            raise RuntimeError(f"docker remove: {status} {data!r:.300}")

    def fill(self, count: int, clients: int) -> None:
        """Create and start `count` containers with `clients` parallel connections."""
        todo = list(range(count))
        lock = threading.Lock()
        errors: list[BaseException] = []

        def worker():
            conn = self.dockerd.connect()
            while True:
                with lock:
                    if not todo or errors:
                        return
                    todo.pop()
                try:
                    self.run(conn)
                except BaseException as err:  # reported after the other clients stop
                    errors.append(err)
                    return

        threads = [threading.Thread(target=worker) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def count(self) -> int:
        _, data = call(self.conn, "GET", "/containers/json")
        return len(data)

    def cleanup(self) -> None:
        conn = self.dockerd.connect()
        with contextlib.suppress(OSError):
            _, listed = call(conn, "GET", "/containers/json?all=1")
            for item in listed if isinstance(listed, list) else []:
                with contextlib.suppress(OSError):
                    call(conn, "DELETE", f"/containers/{item['Id']}?force=true")


def veth_on_bridge_ms(ipr, bridge: str, tag: str) -> float:
    """Milliseconds to make a veth pair and put one end on `bridge`, up (deleted after)."""
    index = ipr.link_lookup(ifname=bridge)[0]
    host, peer = f"{tag}h", f"{tag}p"
    start = time.perf_counter()
    ipr.link("add", ifname=host, kind="veth", peer=peer)
    ipr.link("set", index=ipr.link_lookup(ifname=host)[0], master=index, state="up")
    spent = (time.perf_counter() - start) * 1000
    ipr.link("del", ifname=host)
    return spent


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args)
    return (time.perf_counter() - start) * 1000, out


def measure(berth: BerthSide, docker: DockerSide | None, ipr, runs: int) -> dict:
    """One count's rows: {row: {"berth": [ms...], "docker": [ms...]}}."""
    rows: dict[str, dict[str, list[float]]] = {}

    def add(row, who, ms):
        rows.setdefault(row, {}).setdefault(who, []).append(ms)

    sides = [("berth", berth)] + ([("docker", docker)] if docker else [])
    for i in range(runs):
        for who, side in sides:
            ms, cid = timed(side.run)
            add("run (create+start)", who, ms)
            side.kill(cid)
            time.sleep(0.05)  # the monitor records the exit
            add("remove (stopped)", who, timed(side.remove, cid)[0])
        add("kernel: veth + bridge port", "berth", veth_on_bridge_ms(ipr, berth.bridge(), f"bk{i}"))
        if docker:
            add("kernel: veth + bridge port", "docker", veth_on_bridge_ms(ipr, "docker0", f"dk{i}"))
    return rows


def report(results: dict[int, dict]) -> None:
    counts = sorted(results)
    first, last = counts[0], counts[-1]
    head = "".join(f"{f'berth@{c}':>12}{f'docker@{c}':>12}" for c in counts)
    print(f"\n{'milliseconds (median)':<30}{head}{'berth growth':>14}{'docker growth':>15}")
    for row in results[first]:
        line = f"{row:<30}"
        med = {}
        for c in counts:
            for who in ("berth", "docker"):
                values = results[c].get(row, {}).get(who)
                med[(c, who)] = statistics.median(values) if values else None
                line += f"{med[(c, who)]:>12.2f}" if values else f"{'-':>12}"
        for who in ("berth", "docker"):
            a, b = med[(first, who)], med[(last, who)]
            line += f"{b / a:>14.2f}x" if a and b else f"{'-':>15}"
        print(line)
    print()
    for c in counts:
        for row in results[c]:
            b, d = results[c][row].get("berth"), results[c][row].get("docker")
            if b and d:
                ratio = statistics.median(b) / statistics.median(d)
                print(f"at {c:>5}: {row:<30} Berth / Docker {ratio:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="10,1000")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--no-docker", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    from pyroute2 import IPRoute

    counts = sorted(int(c) for c in args.counts.split(","))
    forward = Path("/proc/sys/net/ipv4/ip_forward")
    forward_before = forward.read_text().strip()
    base = Path(tempfile.mkdtemp(prefix="berth-bridged-"))
    prefix = "bb" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(4))
    berth_net, docker_net = free_subnets(2)
    berth = BerthSide(base / "berth", prefix, berth_net)
    dockerd = docker = None
    ipr = IPRoute()
    results = {}
    try:
        if not args.no_docker:
            from runtime.images.busybox import build_rootfs_tar

            (base / "docker").mkdir()
            gateway = ipaddress.IPv4Network(docker_net).network_address + 1
            dockerd = Dockerd(base / "docker", bridge=True, bip=f"{gateway}/16")
            build_rootfs_tar(str(base / "docker" / "rootfs.tar"))
            dockerd.start(base / "docker" / "rootfs.tar", "bb")
            docker = DockerSide(dockerd)
        kept: list[str] = []
        for count in counts:
            start = time.perf_counter()
            while len(kept) < count:
                kept.append(berth.run())
            berth_fill = time.perf_counter() - start
            docker_fill = 0.0
            if docker:
                start = time.perf_counter()
                docker.fill(count - docker.count(), args.clients)
                docker_fill = time.perf_counter() - start
            print(f"filled to {count}: Berth {berth_fill:.1f} s, Docker {docker_fill:.1f} s")
            time.sleep(5)  # the fill's wake (writes, monitors) settles
            measure(berth, docker, ipr, 2)  # warm-up
            results[count] = measure(berth, docker, ipr, args.runs)
        report(results)
    finally:
        berth.cleanup()
        if dockerd is not None:
            with contextlib.suppress(Exception):
                docker.cleanup()
            dockerd.stop()
        ipr.close()
        shutil.rmtree(base, ignore_errors=True)
        bridges = [p for p in Path("/sys/class/net").iterdir() if (p / "bridge").is_dir()]
        if forward_before == "0" and not bridges:  # as found, unless a bridge still needs it
            forward.write_text("0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
