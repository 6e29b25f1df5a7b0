"""Fixtures for network tests: a private prefix and state root, processes in fresh netns, leak checks."""

from __future__ import annotations

import ipaddress
import os
import secrets
import string
import subprocess
import sys
import time

import pytest

from runtime.config import RuntimeConfig
from runtime.network import NetworkManager, ipam, nft
from runtime.network.netlink import Links

BUSYBOX = "/bin/busybox"
_CANDIDATES = [f"10.213.{n}.0/24" for n in range(256)] + [f"10.214.{n}.0/24" for n in range(256)]
_handed_out: set[str] = set()


def free_subnet() -> str:
    """A /24 from 10.213-214.0.0/16 that no host route and no earlier test uses."""
    routes = ipam.host_routes()
    for candidate in _CANDIDATES:
        net = ipaddress.IPv4Network(candidate)
        if candidate not in _handed_out and not any(net.overlaps(r) for r in routes):
            _handed_out.add(candidate)
            return candidate
    pytest.skip("no free test subnet in 10.213.0.0/15")


def _own_netns() -> int:
    return os.stat("/proc/self/ns/net").st_ino


def random_prefix() -> str:
    """`tn` + 4 random characters: names every host resource of one test."""
    return "tn" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(4))


def leftovers(prefix: str) -> list[str]:
    """Interfaces and nft tables of `prefix` that still exist."""
    links = Links()
    try:
        found = links.names_with_prefix(prefix)
    finally:
        links.close()
    if nft.table_exists("ip", prefix):
        found.append(f"nft table ip {prefix}")
    if os.path.isdir("/run/netns"):
        found += [f"netns {n}" for n in os.listdir("/run/netns") if n.startswith(prefix)]
    return found


def wait_gone(prefix: str, timeout: float = 5.0) -> list[str]:
    """Leftovers after waiting for the kernel to free veths of dead namespaces (asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        found = leftovers(prefix)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def wait_gone_except(prefix: str, keep: list[str], timeout: float = 5.0) -> list[str]:
    """Sorted leftovers once everything not in `keep` is gone (or the timeout passed)."""
    deadline = time.monotonic() + timeout
    while True:
        found = sorted(leftovers(prefix))
        if set(found) <= set(keep) or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.fixture(scope="session", autouse=True)
def ip_forward_restored():
    """Put net.ipv4.ip_forward back as found, unless some bridge (another Berth) still needs it."""
    path = "/proc/sys/net/ipv4/ip_forward"
    with open(path) as f:
        before = f.read().strip()
    yield
    bridges = [
        n for n in os.listdir("/sys/class/net") if os.path.isdir(f"/sys/class/net/{n}/bridge")
    ]
    with open(path) as f:
        now = f.read().strip()
    if before == "0" and now != "0" and not bridges:
        with open(path, "w") as f:
            f.write("0")


@pytest.fixture
def prefix():
    """A fresh resource prefix; the test fails if anything of it is left afterwards."""
    value = random_prefix()
    yield value


@pytest.fixture
def manager(prefix, tmp_path, procs):
    """A NetworkManager with its own prefix, state root and default subnet; purged afterwards."""
    config = RuntimeConfig(
        root=tmp_path / "state",
        run_root=tmp_path / "run",
        prefix=prefix,
        extra={"default_subnet": free_subnet()},
    )
    nm = NetworkManager(config)
    yield nm
    procs.stop_all()  # containers die first, as they would before their network is removed
    nm.purge()
    nm.close()
    left = wait_gone(prefix)
    assert not left, f"left behind: {left}"
    assert not (config.networks_dir / "state.db").exists()


def _wait_listening(proc: subprocess.Popen, port: int, proto: str) -> None:
    """Wait until a socket is bound to `port` inside the process's netns (server ready)."""
    needle = f":{port:04X} "
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for table in (proto, proto + "6"):  # busybox httpd listens on [::]
            with open(f"/proc/{proc.pid}/net/{table}") as f:
                # TCP wants state 0A (LISTEN); a bound UDP socket is enough.
                for line in f.readlines()[1:]:
                    cols = line.split()
                    if needle in cols[1] + " " and (proto == "udp" or cols[3] == "0A"):
                        return
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    raise RuntimeError(f"nothing listens on {proto}/{port} in process {proc.pid}")


class Procs:
    """Processes started in fresh network namespaces (stand-ins for containers)."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.started: list[subprocess.Popen] = []

    def spawn(self, argv: list[str]) -> subprocess.Popen:
        """Run argv in a new network namespace; returns once the namespace exists."""
        proc = subprocess.Popen(["unshare", "--net", *argv], stdin=subprocess.DEVNULL)
        self.started.append(proc)
        host = _own_netns()
        deadline = time.monotonic() + 5
        # unshare creates the namespace after fork: attaching before that would wire the host.
        while True:
            try:
                if os.stat(f"/proc/{proc.pid}/ns/net").st_ino != host:
                    return proc
            except FileNotFoundError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{argv} did not start in a new network namespace")
            time.sleep(0.002)

    def httpd(self, body: str = "hello") -> subprocess.Popen:
        """busybox httpd on port 80 serving `body` at /."""
        www = self.tmp_path / f"www{len(self.started)}"
        www.mkdir()
        (www / "index.html").write_text(body + "\n")
        proc = self.spawn([BUSYBOX, "httpd", "-f", "-p", "80", "-h", str(www)])
        _wait_listening(proc, 80, "tcp")
        return proc

    def udp_echo(self, port: int = 5353) -> subprocess.Popen:
        """A UDP server that answers every datagram with b'echo:' + datagram."""
        code = (
            "import socket\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"s.bind(('0.0.0.0', {port}))\n"
            "while True:\n"
            "    data, peer = s.recvfrom(2048)\n"
            "    s.sendto(b'echo:' + data, peer)\n"
        )
        proc = self.spawn([sys.executable, "-c", code])
        _wait_listening(proc, port, "udp")
        return proc

    def sleeper(self) -> subprocess.Popen:
        """A process that only holds its network namespace."""
        return self.spawn([BUSYBOX, "sleep", "1000"])

    def stop(self, proc: subprocess.Popen) -> None:
        """Kill one process and reap it."""
        if proc.poll() is None:
            proc.kill()
        proc.wait()

    def stop_all(self) -> None:
        """Kill every process this fixture started."""
        for proc in self.started:
            self.stop(proc)


@pytest.fixture
def procs(tmp_path):
    """Factory of processes in fresh network namespaces, all killed afterwards."""
    p = Procs(tmp_path)
    yield p
    p.stop_all()


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run argv; a timeout (packets dropped) comes back as returncode -1 instead of raising."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, -1, "", "timed out")


def run_in(pid: int, argv: list[str], timeout: float = 10) -> subprocess.CompletedProcess:
    """Run argv inside the network namespace of `pid`."""
    return _run(["nsenter", "-t", str(pid), "-n", *argv], timeout)


def wget_in(pid: int, url: str, hosts_file=None) -> subprocess.CompletedProcess:
    """busybox wget from the netns of `pid`; with `hosts_file`, names resolve through that file."""
    # No -T: this busybox build crashes with it; the subprocess timeout stands in.
    fetch = [BUSYBOX, "wget", "-q", "-O-", url]
    if hosts_file is None:
        return run_in(pid, fetch, timeout=3)
    # A private mount namespace shows the container's generated hosts file as /etc/hosts.
    script = f"mount --bind {hosts_file} /etc/hosts && exec {' '.join(fetch)}"
    return run_in(pid, ["unshare", "--mount", "sh", "-c", script], timeout=3)


@pytest.fixture
def files(tmp_path):
    """Factory of per-container hosts/resolv.conf files, as the lifecycle would hand them over."""

    def make(name: str) -> dict:
        d = tmp_path / "files" / name
        d.mkdir(parents=True)
        paths = {"hosts": d / "hosts", "resolv.conf": d / "resolv.conf"}
        for p in paths.values():
            p.touch()
        return paths

    return make


@pytest.fixture
def outside(prefix):
    """A netns standing in for another machine: veth to the host, TEST-NET-ish addresses."""
    name = f"{prefix}x"
    subnet = ipaddress.IPv4Network(free_subnet())
    host_ip, peer_ip = str(subnet.network_address + 1), str(subnet.network_address + 2)
    host_if, peer_if = f"{prefix}xh", f"{prefix}xp"

    def sh(*cmd):
        subprocess.run(cmd, check=True, capture_output=True)

    try:
        sh("ip", "netns", "add", name)
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", peer_if, "netns", name)
        sh("ip", "addr", "add", f"{host_ip}/24", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        sh("ip", "-n", name, "addr", "add", f"{peer_ip}/24", "dev", peer_if)
        sh("ip", "-n", name, "link", "set", peer_if, "up")
        sh("ip", "-n", name, "link", "set", "lo", "up")
        yield {"netns": name, "host_ip": host_ip, "ip": peer_ip}
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def wget_outside(netns: str, url: str) -> subprocess.CompletedProcess:
    """busybox wget from the 'other machine' namespace."""
    return _run(["ip", "netns", "exec", netns, BUSYBOX, "wget", "-q", "-O-", url], timeout=3)
