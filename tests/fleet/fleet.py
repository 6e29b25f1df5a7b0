"""A fleet of Berth hosts on this machine: one control plane, N agents in network namespaces.

Each host looks like another machine: a network namespace of its own with an address on a
bridge the fleet makes, its agent (scripts/berth-agent under `nsenter --net`), its runtime
prefix and state root. The web, one SQLite file and a Redis of the fleet's own (with a
password) are shared, and reachable from every namespace through the bridge address. Reuse:

    from tests.fleet.fleet import fleet   # in a conftest.py: the module-scoped fixture

    def test_x(fleet):
        a, b = fleet.hosts                # FleetHost: name, address, netns, prefix, root
        fleet.api("POST", "containers/?wait=60", {"host": b.name, ...})
        b.containers()                    # what b's runtime has
        fleet.kill_agent(b); fleet.start_agent(b)

Everything goes away on teardown (also after a failure): processes by pid, containers through
a runtime inside each namespace, leftovers by prefix (`sweep`), namespaces, links, the base dir.
"""

import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    ADMIN_PASSWORD,
    PY,
    REPO,
    _random,
    agent_pids,
    call_api,
    free_port,
    kill_agent_process,
    sweep,
    wait_until,
)
from tests.migrated_db import migrated_sqlite

NETNS_DIR = Path("/run/netns")
# Short intervals, so that a silent host is down within seconds.
HEARTBEAT_SECONDS = 1
RECONCILE_SECONDS = 2
# Down after six silent seconds, not three: a full suite on a loaded machine once starved an
# agent's heartbeat thread for over three seconds right after the fleet started.
HEARTBEAT_GRACE_SECONDS = 6
# Variables of the caller that must not leak into the fleet's processes.
_FOREIGN_ENV = ("DATABASE_URL", "REDIS_URL", "REDIS_PASSWORD", "REDIS_PASSWORD_FILE")


@dataclass
class FleetHost:
    """One "machine": its Host row's name, namespace, address, runtime prefix and state roots."""

    name: str
    netns: str
    veth: str  # the root-namespace end, on the fleet's bridge
    address: str
    prefix: str
    base: Path
    env: dict = field(repr=False)
    agent: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def run_root(self) -> Path:
        return self.base / "run"

    @property
    def log(self) -> Path:
        return self.base / "agent.log"

    def runtime(self):
        """A runtime.api.Runtime on this host's state, to look (changes go through in_netns)."""
        from runtime.api import Runtime
        from runtime.config import RuntimeConfig

        return Runtime(RuntimeConfig(root=self.root, run_root=self.run_root, prefix=self.prefix))

    def containers(self) -> list[dict]:
        """The runtime's containers on this host (state dicts)."""
        return self.runtime().list()

    def in_netns(self, code: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run Python `code` as this host (its namespace and runtime environment)."""
        return subprocess.run(
            ["nsenter", f"--net={NETNS_DIR / self.netns}", str(PY), "-c", code],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def agent_pids(self) -> list[int]:
        """The agent's main process and its pool processes (never the container shims)."""
        return agent_pids(self.agent)


class Fleet:
    """One control plane (web, SQLite, Redis) and its hosts, each in a network namespace."""

    def __init__(self, base: Path):
        self.base = base
        self.tag = "f" + _random(4)  # names every link and namespace of this fleet
        self.bridge = f"{self.tag}br"
        self.network = _free_subnet()
        self.gateway = str(self.network.network_address + 1)
        self.data_dir = base / "data"
        self.db_path = self.data_dir / "berth.sqlite3"
        self.logs = base / "logs"
        self.logs.mkdir(parents=True)
        self.redis_port = free_port()
        self.redis_password = secrets.token_hex(16)
        # Agents reach Redis through the bridge, like a broker on the control plane's machine.
        self.redis_url = f"redis://:{self.redis_password}@{self.gateway}:{self.redis_port}/0"
        self.web_port = free_port()
        self.web_url = f"http://{self.gateway}:{self.web_port}"
        self.team = "fleet"
        self.token = None
        self.hosts: list[FleetHost] = []
        self.redis = None
        self.web = None
        self._made_netns_dir = False
        env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV}
        env.update(
            BERTH_DATA_DIR=str(self.data_dir),
            REDIS_URL=self.redis_url,
            DJANGO_SETTINGS_MODULE="config.settings.test",
            DJANGO_ALLOWED_HOSTS=f"localhost,127.0.0.1,{self.gateway}",
            BERTH_ADMIN_PASSWORD=ADMIN_PASSWORD,
            BERTH_HEARTBEAT_SECONDS=str(HEARTBEAT_SECONDS),
            BERTH_HEARTBEAT_GRACE_SECONDS=str(HEARTBEAT_GRACE_SECONDS),
            BERTH_RECONCILE_SECONDS=str(RECONCILE_SECONDS),
            # Where agents reach the web (transfers between hosts), through the bridge.
            BERTH_CONTROL_URL=self.web_url,
            # A drain or migration step on a dead host is called off after this long.
            BERTH_HOST_STEP_SECONDS="15",
            PYTHONPATH=f"{REPO / 'platform'}:{REPO}",
            PYTHONUNBUFFERED="1",
        )
        self.env = env

    # -- building it --------------------------------------------------------------------------

    def start(self, hosts: int = 2):
        """Bridge, Redis, database, web, then `hosts` hosts with their agents running."""
        self._made_netns_dir = not NETNS_DIR.exists()
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/{self.network.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        self._start_redis()
        migrated_sqlite(self.db_path, lambda: self.manage("migrate", "--noinput", "--skip-checks"))
        for _ in range(hosts):
            self.add_host()
        code = (
            "from accounts.models import ApiToken, Team, User; "
            f"Team.objects.get_or_create(name={self.team!r}); "
            "print(ApiToken.issue(User.objects.get(username='admin'), 'fleet')[1])"
        )
        self.token = self.manage("shell", "-c", code).stdout.strip().splitlines()[-1]
        self._start_web()
        for host in self.hosts:
            self.start_agent(host)

    def add_host(self) -> FleetHost:
        """A new "machine": namespace, veth and address, Host row and identity, base image.

        Registration is `manage.py bootstrap --host-name` today; enrolment by join token can
        replace it here without changing the tests. The agent is started by start_agent().
        """
        letter = "abcdefghijklmnopqrstuvwxyz"[len(self.hosts)]
        netns = f"{self.tag}-{letter}"
        address = str(self.network.network_address + 2 + len(self.hosts))
        host_base = self.base / "hosts" / letter
        host_base.mkdir(parents=True)
        name = f"{self.tag}{letter}"
        env = dict(
            self.env,
            BERTH_AGENT_HOST=name,
            BERTH_PREFIX=name,
            BERTH_ROOT=str(host_base / "root"),
            BERTH_RUN_ROOT=str(host_base / "run"),
            BERTH_AGENT_CONCURRENCY="2",
        )
        host = FleetHost(name, netns, netns, address, name, host_base, env)
        self.hosts.append(host)  # before anything exists, so teardown removes what does
        _ip("netns", "add", netns)
        _ip("link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
        _ip("link", "set", host.veth, "master", self.bridge, "up")
        _ip("-n", netns, "addr", "add", f"{address}/{self.network.prefixlen}", "dev", "eth0")
        _ip("-n", netns, "link", "set", "eth0", "up")
        _ip("-n", netns, "link", "set", "lo", "up")
        _ip("-n", netns, "route", "add", "default", "via", self.gateway)
        self.manage("bootstrap", "--skip-checks", "--host-name", name, env=env)
        self.sql_write("UPDATE hosts_host SET address = ? WHERE name = ?", address, name)
        # The base image, built into this host's image store as scripts/berth-up does.
        subprocess.run(
            [str(REPO / "scripts" / "build-busybox-image")],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        return host

    def _start_redis(self):
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", self.gateway]
            + ["--requirepass", self.redis_password, "--dir", str(self.base)]
            + ["--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._redis_answers, 10, "the fleet's redis-server to answer")

    def _redis_answers(self) -> bool:
        try:
            with socket.create_connection((self.gateway, self.redis_port), timeout=1) as s:
                s.sendall(f"AUTH {self.redis_password}\r\nPING\r\n".encode())
                return b"+PONG" in s.recv(64)
        except OSError:
            return False

    def _start_web(self):
        with open(self.logs / "web.log", "ab") as log:
            self.web = subprocess.Popen(
                [
                    str(PY),
                    "manage.py",
                    "runserver",
                    "--noreload",
                    f"{self.gateway}:{self.web_port}",
                ],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def answers():
            if self.web.poll() is not None:
                pytest.fail(f"web server exited:\n{(self.logs / 'web.log').read_text()[-3000:]}")
            try:
                with socket.create_connection((self.gateway, self.web_port), timeout=1):
                    return True
            except OSError:
                return False

        wait_until(answers, 30, "the web server to answer")

    # -- agents -------------------------------------------------------------------------------

    def start_agent(self, host: FleetHost):
        """The host's agent inside its namespace; returns once its heartbeat made the host up."""
        offset = host.log.stat().st_size if host.log.exists() else 0
        started = datetime.now(UTC)
        with open(host.log, "ab") as log:
            # nsenter --net only (not `ip netns exec`): the mount namespace stays the root one,
            # so container mounts stay visible to the host and to the next agent. nsenter execs
            # the agent, which execs celery: the pid is the worker's.
            host.agent = subprocess.Popen(
                [
                    "nsenter",
                    f"--net={NETNS_DIR / host.netns}",
                    str(REPO / "scripts" / "berth-agent"),
                ],
                cwd=REPO,
                env=host.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def ready():
            if host.agent.poll() is not None:
                pytest.fail(f"agent of {host.name} exited:\n{host.log.read_text()[-3000:]}")
            # The short lane's worker (agent@...): the long lane's (long@...) may be ready first.
            lines = host.log.read_text()[offset:].splitlines()
            return any(" ready." in line and "long@" not in line for line in lines)

        wait_until(ready, 60, f"the agent of {host.name} to be ready")
        # Placement refuses a host without a fresh heartbeat: wait for this agent's first one.
        wait_until(lambda: self._beat_since(host, started), 30, f"host {host.name} to be up")

    def _beat_since(self, host: FleetHost, moment: datetime) -> bool:
        [(state, beat)] = self.sql(
            "SELECT state, last_heartbeat FROM hosts_host WHERE name = ?", host.name
        )
        if state != "up" or not beat:
            return False
        return datetime.fromisoformat(beat).replace(tzinfo=UTC) >= moment

    def kill_agent(self, host: FleetHost, sig=signal.SIGKILL):
        """Kill the host's agent (main and pool processes) by pid, as a crash would."""
        kill_agent_process(host.agent, sig)
        host.agent = None

    # -- talking to it ------------------------------------------------------------------------

    wait_until = staticmethod(wait_until)

    def manage(self, *args, env=None) -> subprocess.CompletedProcess:
        """Run `manage.py <args>` against the fleet's database."""
        result = subprocess.run(
            [str(PY), "manage.py", *args],
            cwd=REPO,
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            pytest.fail(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def api(self, method: str, path: str, body=None, *, expect=None, timeout: float = 90):
        """Call the REST API with the admin token; returns (status, parsed JSON or text)."""
        return call_api(
            self.web_url, self.token, method, path, body, expect=expect, timeout=timeout
        )

    def sql(self, query: str, *args) -> list[tuple]:
        """Read the shared SQLite database directly."""
        with sqlite3.connect(self.db_path, timeout=20) as conn:
            return conn.execute(query, args).fetchall()

    def sql_write(self, query: str, *args) -> None:
        """Change the shared SQLite database directly (to stage what a test needs)."""
        with sqlite3.connect(self.db_path, timeout=20) as conn:
            conn.execute(query, args)

    def host_state(self, host: FleetHost) -> str:
        """The Host row's state: up, down or pending."""
        return self.sql("SELECT state FROM hosts_host WHERE name = ?", host.name)[0][0]

    # -- cleanup ------------------------------------------------------------------------------

    def teardown(self):
        """Stop what the fleet started, delete its containers, namespaces, links and files."""
        for host in self.hosts:
            self.kill_agent(host)
        _stop(self.web)
        artifacts = os.environ.get("BERTH_ARTIFACTS")
        if artifacts:
            # The logs outlive the run: the first thing to read when a test fails.
            dest = Path(artifacts) / f"fleet-{self.tag}"
            shutil.copytree(self.logs, dest, dirs_exist_ok=True)
            for host in self.hosts:
                if host.log.exists():
                    shutil.copy(host.log, dest / f"agent-{host.name}.log")
        for host in self.hosts:
            if (NETNS_DIR / host.netns).exists():
                # Inside the namespace: the runtime releases its veths, bridge and nft table there.
                done = host.in_netns(_DELETE_ALL)
                if done.returncode != 0:
                    print(f"fleet cleanup of {host.name}: {done.stderr[-2000:]}", file=sys.stderr)
            sweep(host.prefix, host.base)
            subprocess.run(["ip", "netns", "del", host.netns], capture_output=True)
            subprocess.run(["ip", "link", "del", host.veth], capture_output=True)
        _stop(self.redis)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        if self._made_netns_dir and NETNS_DIR.exists() and not any(NETNS_DIR.iterdir()):
            # `ip netns add` made /run/netns a mount point; leave the machine as it was.
            subprocess.run(["umount", str(NETNS_DIR)], capture_output=True)
            with contextlib.suppress(OSError):
                NETNS_DIR.rmdir()
        shutil.rmtree(self.base, ignore_errors=True)


_DELETE_ALL = textwrap.dedent(
    """
    import sys
    from runtime.api import Runtime
    from runtime.config import RuntimeConfig

    rt = Runtime(RuntimeConfig.from_env())
    for state in rt.list():
        try:
            rt.delete(state["id"], force=True)
        except Exception as err:  # keep going: sweep removes what is left
            print(f"delete {state.get('name')}: {err}", file=sys.stderr)
    """
)


def _ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _stop(proc):
    """Terminate one process of ours by its pid."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _free_subnet() -> ipaddress.IPv4Network:
    """A 10.x.0.0/24 that no address or route of this machine overlaps."""
    shown = (
        subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
        + subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    )
    used = []
    for word in shown.split():
        with contextlib.suppress(ValueError):
            used.append(ipaddress.ip_network(word, strict=False))
    for _ in range(100):
        candidate = ipaddress.ip_network(f"10.{secrets.randbelow(200) + 50}.0.0/24")
        if not any(candidate.overlaps(net) for net in used):
            return candidate
    raise RuntimeError("no free 10.x.0.0/24 subnet on this machine")


@pytest.fixture(scope="module")
def fleet():
    """Two hosts (a, b) with running agents, a web server and the REST API's admin token."""
    if os.geteuid() != 0:
        pytest.skip("the fleet runs as root (namespaces, cgroups, mounts)")
    for tool in ("redis-server", "nsenter", "ip"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed")
    base = Path(f"/tmp/berth-fleet-{_random(8)}")
    base.mkdir(mode=0o755)
    fleet = Fleet(base)
    try:
        fleet.start()
        yield fleet
    finally:
        fleet.teardown()
