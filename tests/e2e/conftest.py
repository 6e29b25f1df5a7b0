"""End-to-end fixtures: a real Redis, web server, host agent (Celery worker) and runtime.

Each test module gets its own stack: a temporary data directory (SQLite file shared by the web
process and the worker), a host name and queue of its own, and a runtime prefix and state root
of its own, so a run never touches a running Berth. Everything is torn down by pid and by
prefix, also when a test fails.
"""

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests import redis_server
from tests.migrated_db import migrated_sqlite

REPO = Path(__file__).resolve().parents[2]
PY = Path(sys.executable)
ADMIN_PASSWORD = "e2e-" + secrets.token_urlsafe(12)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_answers(url: str) -> bool:
    """Whether a Redis server answers PING at redis://[:password@]host:port/... (AUTH first)."""
    return redis_server.answers(url)


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1):
    """Poll `predicate` until it returns something truthy; fail the test with `what` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """REDIS_URL from scripts/test, else a private redis-server on a free port (stopped after)."""
    url = os.environ.get("REDIS_URL")
    if url and redis_answers(url):
        yield url
        return
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    server = redis_server.RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server.url
    finally:
        server.stop()


def call_api(base, token, method, path, body=None, *, expect=None, timeout: float = 90):
    """Call Berth's REST API at `base` with a bearer token; returns (status, JSON or text)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{base}/api/v1/{path.lstrip('/')}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        payload = raw.decode(errors="replace")
    if expect is not None:
        assert status == expect, f"{method} {path}: {status} {payload}"
    return status, payload


def agent_pids(proc) -> list[int]:
    """An agent's main process and its Celery pool processes (never the container shims)."""
    if proc is None or proc.poll() is not None:
        return []
    pids = [proc.pid]
    # Descendants: the short lane's pool, the long lane's worker (a child) and its pool.
    for parent in pids:
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with contextlib.suppress(OSError):
                for child in map(int, (task / "children").read_text().split()):
                    with contextlib.suppress(OSError):
                        if b"celery" in Path(f"/proc/{child}/cmdline").read_bytes():
                            pids.append(child)
    return pids


def kill_agent_process(proc, sig=signal.SIGKILL) -> None:
    """Kill an agent (main and pool processes) by pid, as a crash would, and reap it."""
    for pid in agent_pids(proc):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    if proc is not None:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _random(n: int) -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(n))


class Stack:
    """One Berth installation in a temporary directory: web, agent, database, runtime state."""

    def __init__(self, base: Path, redis_url: str):
        self.base = base
        self.host = "e2e" + _random(6)
        self.team = "e2e"
        self.prefix = "e" + _random(5)
        self.data_dir = base / "data"
        self.root = base / "root"
        self.run_root = base / "run"
        self.db_path = self.data_dir / "berth.sqlite3"
        self.web_port = free_port()
        self.token = None
        self.web = None
        self.worker = None
        self.logs = base / "logs"
        self.logs.mkdir(parents=True)
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}  # always the SQLite file
        env.update(
            BERTH_DATA_DIR=str(self.data_dir),
            REDIS_URL=redis_url,
            DJANGO_SETTINGS_MODULE="config.settings.test",
            BERTH_AGENT_HOST=self.host,
            BERTH_PREFIX=self.prefix,
            BERTH_ROOT=str(self.root),
            BERTH_RUN_ROOT=str(self.run_root),
            BERTH_ADMIN_PASSWORD=ADMIN_PASSWORD,
            # Web, Docker API listener and agent are separate processes: sessions (terminal,
            # attach, exec) cross the Channels layer in Redis.
            BERTH_TEST_CHANNELS="redis",
            PYTHONPATH=f"{REPO / 'platform'}:{REPO}",
            PYTHONUNBUFFERED="1",
        )
        self.env = env

    # -- processes ----------------------------------------------------------------------------

    def manage(self, *args, check=True) -> subprocess.CompletedProcess:
        """Run `manage.py <args>` against this stack's database."""
        result = subprocess.run(
            [str(PY), "manage.py", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            pytest.fail(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def setup(self):
        """Migrate, bootstrap (admin + this host), and issue an API token for the admin."""
        migrated_sqlite(self.db_path, lambda: self.manage("migrate", "--noinput", "--skip-checks"))
        # Bootstrap and the admin's token in one process: each manage.py start costs a second.
        code = (
            "from django.core.management import call_command; "
            f"call_command('bootstrap', host_name={self.host!r}); "
            "from accounts.models import ApiToken, Team, User; "
            f"Team.objects.get_or_create(name={self.team!r}); "
            "print(ApiToken.issue(User.objects.get(username='admin'), 'e2e')[1])"
        )
        self.bootstrap_output = self.manage("shell", "-c", code).stdout
        self.token = self.bootstrap_output.strip().splitlines()[-1]
        # The base image, built into this stack's image store as scripts/berth-up does.
        subprocess.run(
            [str(REPO / "scripts" / "build-busybox-image")],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start_web(self):
        """Django's threaded development server on a free port (a real WSGI server)."""
        with open(self.logs / "web.log", "ab") as log:
            self.web = subprocess.Popen(
                [str(PY), "manage.py", "runserver", "--noreload", f"127.0.0.1:{self.web_port}"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._web_answers, 30, "the web server to answer")

    def _web_answers(self):
        if self.web.poll() is not None:
            pytest.fail(f"web server exited:\n{(self.logs / 'web.log').read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", self.web_port), timeout=1):
                return True
        except OSError:
            return False

    def start_worker(self, concurrency: int = 2):
        """scripts/berth-agent for this stack's host queue; returns once the worker is ready."""
        log_path = self.logs / "agent.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        env = dict(self.env, BERTH_AGENT_CONCURRENCY=str(concurrency))
        with open(log_path, "ab") as log:
            self.worker = subprocess.Popen(
                [str(REPO / "scripts" / "berth-agent")],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def ready():
            if self.worker.poll() is not None:
                pytest.fail(f"agent exited:\n{log_path.read_text()[-3000:]}")
            # The short lane's worker (agent@...): the long lane's (long@...) may be ready first.
            lines = log_path.read_text()[offset:].splitlines()
            return any(" ready." in line and "long@" not in line for line in lines)

        wait_until(ready, 60, "the agent to be ready")

    def worker_pids(self) -> list[int]:
        """The worker's main process and its pool processes (never the container shims)."""
        return agent_pids(self.worker)

    def kill_worker(self, sig=signal.SIGKILL):
        """Kill the agent (main and pool processes) by pid, as a crash would."""
        kill_agent_process(self.worker, sig)
        self.worker = None

    def stop_worker(self):
        """Warm shutdown (SIGTERM), then SIGKILL if it hangs."""
        if self.worker is None:
            return
        for pid in self.worker_pids()[:1]:
            os.kill(pid, signal.SIGTERM)
        try:
            self.worker.wait(30)
        except subprocess.TimeoutExpired:
            self.kill_worker()
        self.worker = None

    def stop_web(self):
        """Stop the web server by its pid."""
        if self.web is not None and self.web.poll() is None:
            self.web.terminate()
            try:
                self.web.wait(10)
            except subprocess.TimeoutExpired:
                self.web.kill()
                self.web.wait(10)
        self.web = None

    # -- talking to it ------------------------------------------------------------------------

    wait_until = staticmethod(wait_until)

    def host_row(self) -> dict:
        """This stack's Host row as the agent left it."""
        rows = self.sql(
            "SELECT state, last_heartbeat, info FROM hosts_host WHERE name = ?", self.host
        )
        state, beat, info = rows[0]
        return {"state": state, "last_heartbeat": beat, "info": json.loads(info or "{}")}

    def api(self, method: str, path: str, body=None, *, expect=None, timeout: float = 90):
        """Call the REST API with the admin token; returns (status, parsed JSON or text)."""
        base = f"http://127.0.0.1:{self.web_port}"
        return call_api(base, self.token, method, path, body, expect=expect, timeout=timeout)

    def upload(self, path: str, fields: dict, file_path: Path, *, timeout: float = 120):
        """POST a multipart form with one file (`file`) and text fields; returns (status, JSON)."""
        boundary = "berth" + secrets.token_hex(8)
        parts = []
        for key, value in fields.items():
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
            )
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file_path.name}"\r\n'
            "Content-Type: application/x-tar\r\n\r\n".encode()
            + file_path.read_bytes()
            + b"\r\n"
        )
        parts.append(f"--{boundary}--\r\n".encode())
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.web_port}/api/v1/{path.lstrip('/')}",
            data=b"".join(parts),
            method="POST",
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def sql(self, query: str, *args) -> list[tuple]:
        """Read the shared SQLite database directly (what the web and the agent both see)."""
        with sqlite3.connect(self.db_path, timeout=20) as conn:
            return conn.execute(query, args).fetchall()

    def sql_write(self, query: str, *args) -> None:
        """Change the shared SQLite database directly (to stage what a test needs)."""
        with sqlite3.connect(self.db_path, timeout=20) as conn:
            conn.execute(query, args)

    def runtime(self):
        """A runtime.api.Runtime on this stack's prefix and state root (to look, and to clean)."""
        from runtime.api import Runtime
        from runtime.config import RuntimeConfig

        return Runtime(RuntimeConfig(root=self.root, run_root=self.run_root, prefix=self.prefix))

    # -- cleanup ------------------------------------------------------------------------------

    def teardown(self):
        """Stop every process this stack started, delete its containers and host resources."""
        self.kill_worker()
        self.stop_web()
        artifacts = os.environ.get("BERTH_ARTIFACTS")
        if artifacts:
            # The web and agent logs outlive the run: the first thing to read when a test fails.
            shutil.copytree(self.logs, Path(artifacts) / f"e2e-{self.host}", dirs_exist_ok=True)
        try:
            rt = self.runtime()
            for state in rt.list():
                try:
                    rt.delete(state["id"], force=True)
                except Exception as err:  # keep cleaning: a leak is reported by sweep below
                    print(f"e2e cleanup: delete {state.get('name')}: {err}", file=sys.stderr)
        except ImportError:
            pass
        sweep(self.prefix, self.base)


def sweep(prefix: str, base: Path) -> None:
    """Remove what a crashed test may have left: mounts under base, cgroups, links, nft tables."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(str(base) + "/"):
            mounts.append(point)
    for point in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
    for parent in Path("/sys/fs/cgroup").glob(f"*/{prefix}"):
        _remove_cgroup(parent)
    for parent in Path("/sys/fs/cgroup").glob(f"{prefix}"):
        _remove_cgroup(parent)
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    for line in links.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(prefix):
            subprocess.run(["ip", "link", "del", name], capture_output=True)
    for family in ("ip", "inet", "ip6"):
        subprocess.run(["nft", "delete", "table", family, prefix], capture_output=True)
    shutil.rmtree(base, ignore_errors=True)


def _remove_cgroup(path: Path) -> None:
    for child in sorted(
        (p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
    ):
        _kill_and_rmdir(child)
    _kill_and_rmdir(path)


def _kill_and_rmdir(path: Path) -> None:
    try:
        for pid in (path / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    except OSError:
        pass
    for _ in range(50):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)


@contextlib.contextmanager
def running_stack(redis_url: str):
    """A migrated, bootstrapped Berth with its host agent running; torn down on leaving."""
    if os.geteuid() != 0:
        pytest.skip("end-to-end tests run as root")
    base = Path(f"/tmp/berth-e2e-{_random(8)}")
    base.mkdir(mode=0o755)
    stack = Stack(base, redis_url)
    try:
        stack.setup()
        stack.start_worker()
        yield stack
    finally:
        stack.teardown()


@pytest.fixture(scope="module")
def stack(redis_url, tmp_path_factory):
    """A migrated, bootstrapped Berth with its web server and host agent running."""
    with running_stack(redis_url) as made:
        yield made


class PrivateRedis(redis_server.RedisServer):
    """A redis-server of one test, with a password; start() after stop() brings it back empty."""


@pytest.fixture
def stack_with_own_redis(tmp_path):
    """A full stack (web and agent) on a Redis of its own, which the test may stop."""
    if os.geteuid() != 0:
        pytest.skip("end-to-end tests run as root")
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    redis = PrivateRedis(tmp_path)
    redis.start()
    base = Path(f"/tmp/berth-e2e-{_random(8)}")
    base.mkdir(mode=0o755)
    stack = Stack(base, redis.url)
    stack.redis = redis
    try:
        stack.setup()
        stack.start_worker()
        stack.start_web()
        yield stack
    finally:
        stack.teardown()
        redis.stop()


@pytest.fixture(scope="module")
def web(stack):
    """The stack with its web server (the REST API) running too."""
    if stack.web is None:
        stack.start_web()
    return stack


@contextlib.contextmanager
def serving(args: list[str], env: dict, log_path: Path, what: str, timeout: float = 60):
    """A long-running Berth process for a test (the Docker API listener, the control worker):
    started with its output in `log_path`, ready when the log says " ready.", stopped by its pid
    (SIGTERM, then SIGKILL) when the block ends."""
    offset = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(
            lambda: proc.poll() is not None or " ready." in log_path.read_text()[offset:],
            timeout,
            what,
        )
        assert proc.poll() is None, f"{what} exited:\n{log_path.read_text()[-3000:]}"
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# The real docker CLI against a served Berth (tests of the Docker Engine API, issue 10).
DEVELOPER = "dev-docker"


@contextlib.contextmanager
def docker_listener(web):
    """`manage.py serve_docker_api` for `web` on a free loopback port; stopped by its pid."""
    port = free_port()
    args = [str(PY), "manage.py", "serve_docker_api", "--bind", f"127.0.0.1:{port}"]
    with serving(args, web.env, web.logs / "docker-api.log", "the Docker API listener"):
        yield port


def docker_cli(web, port: int, config: Path):
    """run("ps") runs the docker CLI as a new developer of team e2e (with a Berth token in a
    private DOCKER_CONFIG at `config`) against the listener on `port`."""
    code = (
        "from accounts.models import Membership, Team, User; "
        "from rbac.models import Role, RoleBinding; "
        "team = Team.objects.get(name='e2e'); "
        f"user = User.objects.create_user(username={DEVELOPER!r}, password='x-unused-1'); "
        "Membership.objects.create(team=team, user=user); "
        "RoleBinding.objects.create(user=user, role=Role.objects.get(name='developer'), "
        "scope_team=team)"
    )
    web.manage("shell", "-c", code)
    secret = web.manage("create_token", DEVELOPER, "--name", "docker", "--days", "1").stdout
    token = secret.strip().splitlines()[-1]
    (config / "config.json").write_text(
        json.dumps({"HttpHeaders": {"Authorization": f"Bearer {token}"}})
    )
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(config),
        "DOCKER_HOST": f"tcp://127.0.0.1:{port}",
        "DOCKER_CONFIG": str(config),
    }

    def run(*args, check=True, timeout=60):
        result = subprocess.run(
            ["docker", *args], env=env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            pytest.fail(f"docker {' '.join(args)}: {result.returncode}\n{result.stderr}")
        return result

    run.env = env
    run.token = token
    return run


# Module-scoped for a module of its own; the modules in tests/e2e/docker/ share one stack for
# the whole session instead (their conftest.py), so each does not pay for starting Berth.
@pytest.fixture(scope="module")
def listener(web):
    """The Docker API listener of this module's stack (its port)."""
    with docker_listener(web) as port:
        yield port


@pytest.fixture(scope="module")
def dock(web, listener, tmp_path_factory):
    """The docker CLI as a developer of team e2e against this module's stack."""
    return docker_cli(web, listener, tmp_path_factory.mktemp("docker-config"))
