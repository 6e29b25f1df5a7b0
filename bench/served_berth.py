"""A throwaway Berth served over HTTP for benchmarks: its own Redis (with a password), SQLite
file, host agent, runtime prefix and state root, and one or more real web servers.

Every process is stopped by its pid, and what the runtime made on the host (mounts, cgroups,
links, nft tables) is swept by prefix, also when a step fails.
"""

import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = REPO / ".venv" / "bin" / "python"
# The web servers a client can meet: berth-up's (`manage.py runserver`, which is Daphne's since
# daphne is the first installed app) and Daphne started directly (docker-compose.dev.yml).
SERVERS = {
    "runserver": lambda port: [str(PY), "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
    "daphne": lambda port: [
        str(REPO / ".venv" / "bin" / "daphne"), "-b", "127.0.0.1", "-p", str(port),
        "config.asgi:application",
    ],
    # The production HTTP server (config/http_server.py: granian, config.settings.prod) as it
    # runs behind a TLS-terminating proxy: plain HTTP, clients send X-Forwarded-Proto
    # (PROD_HEADERS).
    "prod": lambda port: [str(PY), "-m", "config.http_server"],
}  # fmt: skip
# What the production server needs besides the served Berth's environment.
SERVER_ENV = {
    "prod": lambda port: {
        "DJANGO_SETTINGS_MODULE": "config.settings.prod",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "BERTH_BIND": f"127.0.0.1:{port}",
        "BERTH_WS_BIND": f"127.0.0.1:{free_port()}",
    },
}
# A request to the production server as its proxy forwards it (HTTPS terminated in front).
PROD_HEADERS = {"X-Forwarded-Proto": "https"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str) -> None:
    """Poll `predicate` until it is truthy; raise naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Postgres:
    """A private PostgreSQL cluster (as the postgres user) on a free loopback port."""

    def __init__(self, directory: Path):
        self.dir = directory
        initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not initdb:
            raise SystemExit("--database postgres: PostgreSQL is not installed")
        self.bin = Path(initdb[-1]).parent
        self.port = free_port()

    def _as_postgres(self, *argv: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True, capture_output=True)

    def start(self) -> str:
        subprocess.run(["install", "-d", "-o", "postgres", "-m", "700", str(self.dir)], check=True)
        self._as_postgres(
            str(self.bin / "initdb"), "-D", str(self.dir), "--auth=trust", "-U", "postgres"
        )
        self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.dir), "-l", str(self.dir / "server.log"), "-w",
            "-o", f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c max_connections=300",
            "start",
        )  # fmt: skip
        self._as_postgres(
            str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "berth"
        )
        return f"postgres://postgres@127.0.0.1:{self.port}/berth"

    def pid(self) -> int:
        """The postmaster's pid (its backends are its children)."""
        return int((self.dir / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        if not (self.dir / "postmaster.pid").exists():
            return  # never started, or already stopped
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.dir), "-m", "fast", "-w", "stop")


def private_database(base: Path, kind: str) -> Postgres | None:
    """--database: a private PostgreSQL cluster under `base` for "postgres" (started by the
    caller, stopped by scale.clean_up), None for "sqlite" (the served Berth's own file)."""
    if kind != "postgres":
        return None
    base.chmod(0o755)  # the postgres user reaches its cluster below it
    return Postgres(base / "pg")


class ServedBerth:
    """Redis, database, admin token, busybox image, agent and web servers of one Berth."""

    def __init__(self, base: Path, settings: str, database_url: str = ""):
        self.base = base
        self.host = "bh" + secrets.token_hex(3)
        self.prefix = "bq" + secrets.token_hex(2)
        self.redis_port = free_port()
        # Redis with a password, as issue 9 wants every installation to run it.
        password = secrets.token_hex(16)
        self.procs: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}
        self.token = ""
        self.env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        self.env.update(
            BERTH_DATA_DIR=str(base / "data"),
            REDIS_URL=f"redis://:{password}@127.0.0.1:{self.redis_port}/0",
            DJANGO_SETTINGS_MODULE=settings,
            BERTH_AGENT_HOST=self.host,
            BERTH_PREFIX=self.prefix,
            BERTH_ROOT=str(base / "root"),
            BERTH_RUN_ROOT=str(base / "run"),
            BERTH_ADMIN_PASSWORD=secrets.token_urlsafe(12),
            PYTHONPATH=f"{REPO / 'platform'}:{REPO}",
            PYTHONUNBUFFERED="1",
        )
        if database_url:  # else SQLite under BERTH_DATA_DIR
            self.env["DATABASE_URL"] = database_url
        self.password = password

    def _spawn(self, name: str, args: list[str], **env) -> subprocess.Popen:
        log = open(self.base / f"{name}.log", "ab")  # noqa: SIM115 (lives as long as the process)
        proc = subprocess.Popen(
            args, cwd=REPO, env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT
        )
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        """The tail of a process's log."""
        return (self.base / f"{name}.log").read_text(errors="replace")[-3000:]

    def manage(self, *args: str) -> str:
        """`manage.py <args>` against this Berth; returns its stdout."""
        done = subprocess.run(
            [str(PY), "manage.py", *args], cwd=REPO, env=self.env, capture_output=True, text=True
        )
        if done.returncode:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def start(self, servers: list[str]) -> None:
        """Redis, migrations, bootstrap (admin, host, agent identity), token, image, agent, web."""
        self._spawn(
            "redis",
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--requirepass", self.password, "--dir", str(self.base),
             "--save", "", "--appendonly", "no"],
        )  # fmt: skip
        wait_until(self._redis_answers, 10, "redis-server")
        self.manage("migrate", "--noinput", "--skip-checks")
        self.manage("bootstrap", "--skip-checks", "--host-name", self.host)
        code = (
            "from accounts.models import ApiToken, Team, User; "
            "Team.objects.get_or_create(name='bench'); "
            "print(ApiToken.issue(User.objects.get(username='admin'), 'bench')[1])"
        )
        self.token = self.manage("shell", "-c", code).strip().splitlines()[-1]
        subprocess.run(
            [str(REPO / "scripts" / "build-busybox-image")],
            env=self.env,
            check=True,
            capture_output=True,
        )
        agent = self._spawn("agent", [str(REPO / "scripts" / "berth-agent")])
        wait_until(
            lambda: " ready." in self.log("agent") or agent.poll() is not None, 60, "the agent"
        )
        if agent.poll() is not None:
            raise RuntimeError(f"agent exited:\n{self.log('agent')}")
        for name in servers:
            port = self.ports[name] = free_port()
            web = self._spawn(name, SERVERS[name](port), **SERVER_ENV.get(name, lambda _: {})(port))
            wait_until(lambda p=port, w=web: _listens(p) or w.poll() is not None, 60, name)
            if web.poll() is not None:
                raise RuntimeError(f"{name} exited:\n{self.log(name)}")

    def _redis_answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.redis_port), timeout=1) as s:
                s.sendall(f"AUTH {self.password}\r\nPING\r\n".encode())
                time.sleep(0.01)
                return b"+PONG" in s.recv(64)
        except OSError:
            return False

    def stop(self) -> None:
        """Stop web and agent, delete the runtime's containers, stop Redis, sweep the host."""
        try:
            for name in [n for n in self.procs if n not in ("agent", "redis")]:
                _stop(self.procs[name], workers=True)
            if "agent" in self.procs:
                _stop_agent(self.procs["agent"])
            self._delete_containers()
        finally:
            # Whatever failed above, Redis goes and the host is swept.
            if "redis" in self.procs:
                _stop(self.procs["redis"])
            sweep(self.prefix, self.base)

    def _delete_containers(self) -> None:
        sys.path.insert(0, str(REPO))  # the runtime lives at the top of the checkout
        try:
            from runtime.api import Runtime
            from runtime.config import RuntimeConfig

            rt = Runtime(
                RuntimeConfig(
                    root=self.base / "root", run_root=self.base / "run", prefix=self.prefix
                )
            )
            for state in rt.list():
                with contextlib.suppress(Exception):
                    rt.delete(state["id"], force=True)
        except Exception as err:  # keep going: the sweep removes what is left
            print(f"cleanup: {err}", file=sys.stderr)


def _listens(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _children(pid: int) -> dict[int, bytes]:
    """The process's children now, with their command lines."""
    found = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in map(int, (task / "children").read_text().split()):
                with contextlib.suppress(OSError):
                    found[child] = Path(f"/proc/{child}/cmdline").read_bytes()
    return found


def _stop(proc: subprocess.Popen, *, workers: bool = False) -> None:
    """Stop a process by its pid; with `workers`, then its children left behind (a web server's
    workers: granian stopped while a worker was still starting left that worker running, seen
    in session 23). Never for the agent, whose children may be containers' shims."""
    children = _children(proc.pid) if workers else {}
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    for pid, cmdline in children.items():
        with contextlib.suppress(OSError):  # gone, as it should be
            if Path(f"/proc/{pid}/cmdline").read_bytes() == cmdline:  # still that process
                os.kill(pid, signal.SIGKILL)


def _pool_pids(pid: int) -> list[int]:
    """The worker's pool processes (children running celery; never container shims)."""
    return [child for child, cmdline in _children(pid).items() if b"celery" in cmdline]


def _stop_agent(proc: subprocess.Popen) -> None:
    """Warm shutdown by pid; SIGKILL the worker and its pool if it lingers."""
    pool = _pool_pids(proc.pid)
    _stop(proc)
    for pid in pool:
        with contextlib.suppress(OSError):  # gone already: the warm shutdown ended it
            if b"celery" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


def sweep(prefix: str, base: Path) -> None:
    """Remove what a failed run may have left: mounts under base, cgroups, links, nft tables."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(str(base) + "/"):
            mounts.append(point)
    for point in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
    for parent in [*Path("/sys/fs/cgroup").glob(f"*/{prefix}"), Path("/sys/fs/cgroup") / prefix]:
        if parent.is_dir():
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
    # Deepest first; a process left in one (a shim of a crashed run) is ours: it is under our prefix.
    for child in sorted(
        [p for p in path.rglob("*") if p.is_dir()] + [path],
        key=lambda p: len(p.parts),
        reverse=True,
    ):
        with contextlib.suppress(OSError):
            for pid in (child / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
        for _ in range(50):
            try:
                child.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)
