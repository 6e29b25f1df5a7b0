"""A private dockerd for benchmarks (own socket, data and exec roots), and its Engine API client.

Stopped by its pid; what it leaves on the host (bridge, cgroups, mounts) is removed afterwards,
but only what was not there before it started.
"""

import http.client
import json
import socket
import subprocess
import time
from pathlib import Path


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over AF_UNIX: one keep-alive connection to dockerd's socket."""

    def __init__(self, path: str, timeout: float = 60):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def call(conn: http.client.HTTPConnection, method: str, path: str, body=None, headers=None):
    """One request on a kept-alive connection; returns (status, parsed JSON or raw bytes)."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body))
    head = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=data, headers={**head, **(headers or {})})
    response = conn.getresponse()
    raw = response.read()  # read it all: the connection is reused for the next request
    if response.getheader("Content-Type", "").startswith("application/json") and raw:
        return response.status, json.loads(raw)
    return response.status, raw


def create_started(conn: http.client.HTTPConnection, body: dict, name: str = "") -> str:
    """Create a container from Engine API `body` (named `name` if given) and start it; its id."""
    path = f"/containers/create?name={name}" if name else "/containers/create"
    status, data = call(conn, "POST", path, body)
    if status != 201:
        raise RuntimeError(f"docker create: {status} {data!r:.300}")
    status, out = call(conn, "POST", f"/containers/{data['Id']}/start")
    if status != 204:
        raise RuntimeError(f"docker start: {status} {out!r:.300}")
    return data["Id"]


class Dockerd:
    """One dockerd of this run; `network` bridge gives it a docker0, none gives it no bridge."""

    def __init__(self, base: Path, *, bridge: bool, bip: str | None = None):
        self.base = base
        self.bip = bip  # docker0's address and subnet (--bip), when its default would clash
        self.sock = str(base / "d.sock")
        self.bridge = bridge
        self.proc = None
        self.had_docker0 = Path("/sys/class/net/docker0").exists()
        self.had_cgroups = set(Path("/sys/fs/cgroup").glob("*/docker"))

    def start(self, image_tar: Path, image: str) -> None:
        """Start dockerd, wait for its API, import `image_tar` as `image`."""
        log = open(self.base / "dockerd.log", "wb")  # noqa: SIM115 (lives as long as dockerd)
        args = [
            "dockerd",
            "--data-root", str(self.base / "data"),
            "--exec-root", str(self.base / "x"),
            "--pidfile", str(self.base / "dockerd.pid"),
            "--host", f"unix://{self.sock}",
            "--iptables=false", "--ip6tables=false", "--ip-masq=false",
        ]  # fmt: skip
        if not self.bridge:
            args.append("--bridge=none")  # no docker0 at all: nothing to leave behind
        elif self.bip:
            args.append(f"--bip={self.bip}")
        self.proc = subprocess.Popen(args, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while not self._ping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((self.base / "dockerd.log").read_text()[-2000:])
            time.sleep(0.1)
        conn = self.connect()
        status, body = call(
            conn,
            "POST",
            f"/images/create?fromSrc=-&repo={image}&tag=latest",
            image_tar.read_bytes(),
            {"Content-Type": "application/x-tar"},
        )
        conn.close()
        if status != 200:
            raise RuntimeError(f"docker image import: {status} {body!r:.300}")

    def connect(self) -> UnixHTTPConnection:
        """A new keep-alive connection to the Engine API."""
        return UnixHTTPConnection(self.sock)

    def _ping(self) -> bool:
        try:
            conn = self.connect()
            status, _ = call(conn, "GET", "/_ping")
            conn.close()
            return status == 200
        except OSError:
            return False

    def stop(self) -> None:
        """Stop dockerd by its pid; remove its mounts, bridge and cgroups if it made them."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for root in ("x", "data"):
            subprocess.run(["umount", "-R", "-l", str(self.base / root)], capture_output=True)
        if self.bridge and not self.had_docker0:
            subprocess.run(["ip", "link", "del", "docker0"], capture_output=True)
        for cgroup in set(Path("/sys/fs/cgroup").glob("*/docker")) - self.had_cgroups:
            for sub in sorted(cgroup.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if sub.is_dir():
                    sub.rmdir()
            cgroup.rmdir()
