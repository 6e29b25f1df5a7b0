#!/usr/bin/env python
"""Time from the API call to a running container: Berth's REST API + agent vs `docker run -d`.

Berth side: a throwaway installation (SQLite file, private Redis, this checkout's host agent
on its own queue, the runtime on its own prefix and state root). Each sample POSTs
/api/v1/containers/ with start=true through Django's test client in this process and stops
the clock when the container runs:
  - "?wait": the API call blocks until the agent finished (what a client sees);
  - "poll": the API call returns 202 at once and this process watches the container row
    every millisecond (the agent's own latency, without the API's wait-polling interval).
Peer: `docker run -d` (CLI wall time) against a private dockerd started here (data root in a
temporary directory, --iptables=false so the host's firewall is left alone), stopped by its
pid afterwards; its docker0 bridge is removed.

    .venv/bin/python bench/api_to_running.py [--runs 20] [--network none|bridge] [--pool prefork|threads] [--no-docker]

Over real HTTP (a served Berth, a bearer token, kept-alive connections) against the Docker
Engine API's create + start on its socket, with Berth's CPU per create by process, the bench
of issue 9's target is bench/api_http.py (docs/benchmarks.md, "API to running").
"""

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = REPO / ".venv" / "bin" / "python"
sys.path[:0] = [str(REPO / "platform"), str(REPO)]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str):
    """Poll until `predicate()` is truthy; raise with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


class BerthUnderTest:
    """Redis, database, image and host agent of one throwaway Berth; stopped by pid."""

    def __init__(self, base: Path, pool: str):
        self.base = base
        self.host = "bench" + secrets.token_hex(3)
        self.prefix = "b" + secrets.token_hex(3)[:5]
        self.port = free_port()
        self.pool = pool
        self.procs = []
        self.env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        self.env.update(
            BERTH_DATA_DIR=str(base / "data"),
            REDIS_URL=f"redis://127.0.0.1:{self.port}/0",
            DJANGO_SETTINGS_MODULE="config.settings.test",
            BERTH_AGENT_HOST=self.host,
            BERTH_AGENT_POOL=pool,
            BERTH_PREFIX=self.prefix,
            BERTH_ROOT=str(base / "root"),
            BERTH_RUN_ROOT=str(base / "run"),
            BERTH_ADMIN_PASSWORD=secrets.token_urlsafe(12),
            PYTHONPATH=f"{REPO / 'platform'}:{REPO}",
        )

    def start(self):
        """Redis, migrations, bootstrap, busybox image, agent."""
        redis = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            cwd=self.base,
            stdout=subprocess.DEVNULL,
        )
        self.procs.append(redis)
        wait_for(lambda: _answers(self.port), 10, "redis-server")
        for args in (
            ["migrate", "--noinput", "--skip-checks"],
            ["bootstrap", "--skip-checks", "--host-name", self.host],
        ):
            done = subprocess.run(
                [str(PY), "manage.py", *args],
                cwd=REPO,
                env=self.env,
                capture_output=True,
                text=True,
            )
            if done.returncode:
                raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stdout}{done.stderr}")
        subprocess.run(
            [str(REPO / "scripts" / "build-busybox-image")],
            env=self.env,
            check=True,
            capture_output=True,
        )
        log = open(self.base / "agent.log", "wb")  # noqa: SIM115 (lives as long as the agent)
        agent = subprocess.Popen(
            [str(REPO / "scripts" / "berth-agent")], cwd=REPO, env=self.env, stdout=log, stderr=log
        )
        self.procs.append(agent)
        wait_for(
            lambda: (
                b" ready." in (self.base / "agent.log").read_bytes() or agent.poll() is not None
            ),
            60,
            "agent",
        )
        if agent.poll() is not None:
            raise RuntimeError((self.base / "agent.log").read_text()[-2000:])

    def django(self):
        """Set this process up as the web tier on the same database and broker."""
        os.environ.update(self.env)
        import django

        django.setup()
        from django.test.utils import setup_test_environment

        setup_test_environment()
        from accounts.models import Team, User

        Team.objects.get_or_create(name="bench")
        return User.objects.get(username="admin")

    def stop(self):
        """Delete containers, stop agent and Redis by pid, remove state and host resources."""
        agent = self.procs[-1] if len(self.procs) > 1 else None
        if agent is not None:
            _kill_tree(agent.pid)
        try:
            from runtime.api import Runtime
            from runtime.config import RuntimeConfig

            rt = Runtime(
                RuntimeConfig(
                    root=self.base / "root", run_root=self.base / "run", prefix=self.prefix
                )
            )
            for state in rt.list():
                rt.delete(state["id"], force=True)
            if hasattr(rt.networks, "list"):
                for net in rt.networks.list():
                    name = net.get("name") if isinstance(net, dict) else getattr(net, "name", None)
                    if name:
                        with contextlib.suppress(Exception):
                            rt.networks.remove(name)
        except Exception as err:
            print(f"cleanup: {err}", file=sys.stderr)
        for proc in reversed(self.procs[:1]):
            proc.terminate()
            proc.wait(10)
        subprocess.run(["ip", "link", "del", f"{self.prefix}0"], capture_output=True)
        subprocess.run(["nft", "delete", "table", "ip", self.prefix], capture_output=True)
        for path in Path("/sys/fs/cgroup").glob(f"*/{self.prefix}"):
            for sub in sorted(path.glob("*"), reverse=True):
                if sub.is_dir():
                    sub.rmdir()
            path.rmdir()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _kill_tree(pid: int) -> None:
    """SIGTERM the agent (warm shutdown), SIGKILL it and its pool if it lingers."""
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            children += [int(c) for c in (task / "children").read_text().split()]
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                break
        except ChildProcessError:
            break
        time.sleep(0.05)
    for p in [pid, *children]:
        try:
            if b"celery" in Path(f"/proc/{p}/cmdline").read_bytes():
                os.kill(p, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass


posted: list[float] = []  # milliseconds of each 202 answer (row-polled runs)


def measure_berth(admin, runs: int, network: str, wait: bool) -> list[float]:
    """Milliseconds from the POST to the container running, `runs` times."""
    from django.test import Client

    from containers.models import Container

    client = Client()
    client.force_login(admin)
    timings, ids = [], []
    posted.clear()
    tag = "w" if wait else "p"
    for i in range(runs + 1):  # the first one warms the agent's pool up and is not counted
        body = {
            "team": "bench",
            "start": True,
            "spec": {
                "image": "busybox",
                "name": f"{tag}{i}",
                "command": ["sleep", "1000"],
                "network": {"mode": network},
            },
        }
        path = "/api/v1/containers/?wait=30" if wait else "/api/v1/containers/"
        start = time.perf_counter()
        response = client.post(path, body, content_type="application/json")
        if wait:
            elapsed = time.perf_counter() - start
            data = response.json()
            if response.status_code != 200 or data["operation"]["state"] != "succeeded":
                raise RuntimeError(f"create failed: {response.status_code} {data}")
            cid = data["container"]["id"]
        else:
            posted.append((time.perf_counter() - start) * 1000)
            cid = response.json()["container"]["id"]
            while True:
                state = (
                    Container.objects.filter(id=cid)
                    .values_list("observed_state", flat=True)
                    .first()
                )
                if state == "running":
                    break
                if state in ("error", "stopped") or time.perf_counter() - start > 30:
                    raise RuntimeError(f"container {cid} did not run: {state}")
                time.sleep(0.001)
            elapsed = time.perf_counter() - start
        assert Container.objects.get(id=cid).observed_state == "running"
        ids.append(cid)
        if i:
            timings.append(elapsed * 1000)
    for cid in ids:
        client.delete(f"/api/v1/containers/{cid}/?wait=30&force=true")
    return timings


class Dockerd:
    """A private dockerd (own socket, data root and pid file), stopped by its pid."""

    def __init__(self, base: Path):
        self.base = base
        self.sock = base / "docker.sock"
        self.proc = None
        self.had_docker0 = Path("/sys/class/net/docker0").exists()

    def docker(self, *args, check=True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["docker", "-H", f"unix://{self.sock}", *args],
            capture_output=True,
            text=True,
            check=check,
        )

    def start(self):
        log = open(self.base / "dockerd.log", "wb")  # noqa: SIM115 (lives as long as dockerd)
        self.proc = subprocess.Popen(
            [
                "dockerd",
                "--data-root", str(self.base / "data"),
                "--exec-root", str(self.base / "exec"),
                "--pidfile", str(self.base / "dockerd.pid"),
                "-H", f"unix://{self.sock}",
                "--iptables=false",
                "--ip6tables=false",
            ],
            stdout=log,
            stderr=log,
        )  # fmt: skip
        wait_for(
            lambda: (
                self.docker("info", check=False).returncode == 0 or self.proc.poll() is not None
            ),
            60,
            "dockerd",
        )
        if self.proc.poll() is not None:
            raise RuntimeError((self.base / "dockerd.log").read_text()[-2000:])
        from runtime.images.busybox import build_rootfs_tar

        tar = self.base / "rootfs.tar"
        build_rootfs_tar(str(tar))
        self.docker("import", str(tar), "bb")

    def measure(self, runs: int, network: str) -> list[float]:
        timings, names = [], []
        net = ["--network", "none"] if network == "none" else []
        for i in range(runs + 1):
            name = f"bench{i}"
            start = time.perf_counter()
            self.docker("run", "-d", *net, "--name", name, "bb", "sleep", "1000")
            if i:
                timings.append((time.perf_counter() - start) * 1000)
            names.append(name)
        self.docker("rm", "-f", *names, check=False)
        return timings

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        # dockerd leaves its bridge behind; ours, unless one existed before we started.
        if not self.had_docker0:
            subprocess.run(["ip", "link", "del", "docker0"], capture_output=True)
        subprocess.run(["umount", "-R", str(self.base / "exec")], capture_output=True)
        subprocess.run(["umount", "-R", str(self.base / "data")], capture_output=True)


def main() -> int:
    """Run both sides, print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--network", choices=["none", "bridge"], default="none")
    parser.add_argument("--pool", choices=["prefork", "threads"], default="prefork")
    parser.add_argument("--no-docker", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: the agent creates namespaces and cgroups", file=sys.stderr)
        return 1
    results = {}
    base = Path(tempfile.mkdtemp(prefix="bb-", dir="/tmp"))
    try:
        berth = BerthUnderTest(base / "berth", args.pool)
        (base / "berth").mkdir()
        try:
            berth.start()
            admin = berth.django()
            results["berth API ?wait"] = measure_berth(admin, args.runs, args.network, wait=True)
            results["berth API, row polled"] = measure_berth(
                admin, args.runs, args.network, wait=False
            )
            results["  of which POST -> 202"] = posted[1:]
        finally:
            berth.stop()
        if not args.no_docker and shutil.which("dockerd"):
            (base / "docker").mkdir()
            dockerd = Dockerd(base / "docker")
            try:
                dockerd.start()
                results["docker run -d"] = dockerd.measure(args.runs, args.network)
            finally:
                dockerd.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)

    print(
        f"API call to running container, network {args.network}, agent pool {args.pool}, {args.runs} runs"
    )
    print(f"{'what':<24} {'median ms':>10} {'min':>8} {'max':>8}")
    for what, values in results.items():
        print(
            f"{what:<24} {statistics.median(values):>10.1f} {min(values):>8.1f} {max(values):>8.1f}"
        )
    if "docker run -d" in results:
        docker = statistics.median(results["docker run -d"])
        for what in ("berth API ?wait", "berth API, row polled"):
            print(f"ratio {what} / docker run -d: {statistics.median(results[what]) / docker:.2f}")
    print("target: API to running <= 100 ms median")
    return 0


if __name__ == "__main__":
    sys.exit(main())
