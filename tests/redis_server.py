"""A private redis-server for tests: loopback, a password, optionally TLS; stopped by its PID."""

import contextlib
import os
import secrets
import socket
import ssl
import subprocess
import time
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str, context: ssl.SSLContext | None = None) -> bool:
    """Whether the Redis at redis[s]://[user:password@]host:port/... answers PING (after AUTH)."""
    parts = urlsplit(url)
    commands = []
    if parts.password is not None:
        auth = [b"AUTH"] + [unquote(p).encode() for p in (parts.username, parts.password) if p]
        commands.append(auth)
    commands.append([b"PING"])
    wire = b"".join(
        b"*%d\r\n" % len(cmd) + b"".join(b"$%d\r\n%s\r\n" % (len(arg), arg) for arg in cmd)
        for cmd in commands
    )
    try:
        with contextlib.ExitStack() as stack:
            sock = socket.create_connection((parts.hostname, parts.port or 6379), timeout=1)
            stack.enter_context(sock)
            if parts.scheme == "rediss":
                context = context or ssl.create_default_context()
                sock = stack.enter_context(
                    context.wrap_socket(sock, server_hostname=parts.hostname)
                )
            sock.sendall(wire)
            reply = b""
            while reply.count(b"\r\n") < len(commands):
                chunk = sock.recv(256)
                if not chunk:
                    break
                reply += chunk
    except OSError:
        return False
    return reply.endswith(b"+PONG\r\n") and not reply.startswith(b"-")


class RedisServer:
    """redis-server on 127.0.0.1:`port` requiring `password`, configured by a mode-600 file."""

    def __init__(self, workdir: Path, *, port: int | None = None, password: str | None = None):
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.password = password or secrets.token_urlsafe(24)
        self.url = f"redis://:{quote(self.password, safe='')}@127.0.0.1:{self.port}/0"
        self.proc = None

    def config(self, extra: dict[str, str] | None = None) -> Path:
        """Write the config file (the password never goes on the command line, where ps shows it)."""
        lines = {
            "port": str(self.port),
            "bind": "127.0.0.1",
            "dir": f'"{self.workdir}"',
            "save": '""',
            "appendonly": "no",
            "requirepass": self.password,
        } | (extra or {})
        path = self.workdir / "redis.conf"
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.writelines(f"{key} {value}\n" for key, value in lines.items())
        return path

    def start(self, extra: dict[str, str] | None = None, ready=None, timeout: float = 10):
        """Start it and wait until `ready()` (default: it answers PING with the password)."""
        self.proc = subprocess.Popen(
            ["redis-server", str(self.config(extra))],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        ready = ready or (lambda: answers(self.url))
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)
        return self

    def stop(self):
        """Stop the server this object started, by its PID."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None
