"""A throwaway Berth served the production way (config/http_server.py: granian running
threaded WSGI workers for HTTP; deploy/gunicorn-ws.conf.py: a uvicorn worker for WebSockets on
a port of its own; HTTPS with a test certificate, config.settings.prod, WhiteNoise), for the
tests in this folder and the Prometheus test. No agent: rows stand in for containers.

Every process is stopped by its pid; everything lives in the given directory.
"""

import contextlib
import json
import os
import secrets
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PY = Path(sys.executable)
GUNICORN = PY.parent / "gunicorn"  # the WebSocket server


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 (cert, key) made by openssl: an
    ECDSA P-256 key, as scripts/berth-up makes (a handshake's signature costs 0.03 ms here
    against RSA-2048's 0.6 ms: 250 clients connecting at once are a third of a core less)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class ProdServer:
    """Database, admin token, static files and the production web server of one Berth."""

    def __init__(
        self, base: Path, redis_url: str, *, workers: int = 2, env: dict | None = None, **extra_env
    ):
        """`env`: start from another installation's environment (its data dir and database)."""
        self.base = base
        self.port = free_port()
        self.ws_port = free_port()
        self.workers = workers
        self.host = "pm" + secrets.token_hex(3)
        self.cert, self.key = make_certificate(base)
        self.proc: subprocess.Popen | None = None  # the HTTP server (granian, WSGI workers)
        self.ws_proc: subprocess.Popen | None = None  # the WebSocket server (uvicorn worker)
        self.token = ""
        self.env = (
            dict(env)
            if env
            else {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
        )
        self.env.setdefault("BERTH_DATA_DIR", str(base / "data"))
        self.env.update(
            DJANGO_SETTINGS_MODULE="config.settings.prod",
            DJANGO_SECRET_KEY=secrets.token_urlsafe(40),
            DJANGO_ALLOWED_HOSTS="localhost,127.0.0.1",
            REDIS_URL=redis_url,
            BERTH_BIND=f"127.0.0.1:{self.port}",
            BERTH_WS_BIND=f"127.0.0.1:{self.ws_port}",
            BERTH_WORKERS=str(workers),
            BERTH_TLS_CERT=str(self.cert),
            BERTH_TLS_KEY=str(self.key),
            BERTH_ADMIN_PASSWORD=secrets.token_urlsafe(12),
            PYTHONPATH=f"{REPO / 'platform'}:{REPO}",
            PYTHONUNBUFFERED="1",
            **extra_env,
        )
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.base_url = f"https://127.0.0.1:{self.port}"
        self.ws_base_url = f"wss://127.0.0.1:{self.ws_port}"
        self.tls = ssl.create_default_context(cafile=str(self.cert))

    def manage(self, *args: str) -> str:
        """`manage.py <args>` against this Berth; returns stdout."""
        done = subprocess.run(
            [str(PY), "manage.py", *args], cwd=REPO, env=self.env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        if done.returncode:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def prepare(self, code: str = "") -> None:
        """Migrate, bootstrap (admin and a host), issue the admin a token, collect static files;
        `code` runs in `manage.py shell` afterwards (rows for a test)."""
        self.manage("migrate", "--noinput", "--skip-checks")
        self.manage("bootstrap", "--skip-checks", "--host-name", self.host)
        issue = (
            "from accounts.models import ApiToken, User; "
            "print(ApiToken.issue(User.objects.get(username='admin'), 'prod')[1])"
        )
        self.token = self.manage("shell", "-c", issue).strip().splitlines()[-1]
        self.manage("collectstatic", "--noinput")
        if code:
            self.manage("shell", "-c", code)

    def start(self, timeout: float = 60) -> None:
        """Both servers as berth-up --prod runs them; returns once every worker booted and the
        HTTP server answers."""
        ws_log = open(self.base / "ws.log", "ab")  # noqa: SIM115 (lives as long as the process)
        self.ws_proc = subprocess.Popen(
            [str(GUNICORN), "-c", str(REPO / "deploy" / "gunicorn-ws.conf.py"),
             "config.asgi:application"],
            cwd=REPO, env=self.env, stdout=ws_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log = open(self.base / "web.log", "ab")  # noqa: SIM115 (lives as long as the process)
        self.proc = subprocess.Popen(
            [str(PY), "-m", "config.http_server"],
            cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc, name in ((self.proc, "granian"), (self.ws_proc, "gunicorn (WebSockets)")):
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited:\n{self.log()}\n{self.ws_log()}")
            if (
                self.log().count("Started worker") >= self.workers
                and "Application startup complete" in self.ws_log()
                and self._answers()
            ):
                return
            time.sleep(0.1)
        raise RuntimeError(
            f"the servers did not start in {timeout} s:\n{self.log()}\n{self.ws_log()}"
        )

    def _answers(self) -> bool:
        """The HTTP server answers a request."""
        try:
            return self.get("/static/berth/berth.css")[0] > 0
        except OSError:
            return False

    def log(self) -> str:
        """The HTTP server's log."""
        return (self.base / "web.log").read_text(errors="replace")

    def ws_log(self) -> str:
        """The WebSocket server's log."""
        path = self.base / "ws.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def worker_pids(self, proc: subprocess.Popen | None = None) -> list[int]:
        """A server's worker processes (its children; default: the HTTP server's)."""
        proc = proc or self.proc
        pids = []
        for task in Path(f"/proc/{proc.pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                pids += [int(p) for p in (task / "children").read_text().split()]
        return pids

    def get(self, path: str, headers: dict | None = None, *, method="GET", body=None):
        """A request over HTTPS (certificate verified); returns (status, headers, body)."""
        headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(
            self.base_url + path, headers=headers, data=data, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=30, context=self.tls) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers, err.read()

    def stop(self) -> None:
        """Stop both servers (each stops its workers) by pid."""
        for proc in (self.proc, self.ws_proc):
            if proc is None or proc.poll() is not None:
                continue
            workers = self.worker_pids(proc)
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            for pid in workers:  # normally gone with their master
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
