"""exec (with and without TTY) and attach to a TTY container through the shim's socket."""

import socket
import time
from pathlib import Path

import pytest

from runtime.container.fsutil import socket_path
from runtime.errors import InvalidState

pytestmark = pytest.mark.root


def test_exec_env_user_workdir_and_exit_code(rt, base_spec):
    st = rt.run(base_spec)
    code, out = rt.exec(
        st["id"],
        ["sh", "-c", "echo $A:$(id -u):$PWD; exit 4"],
        env=["A=b"],
        user="nobody",
        workdir="/tmp",
    )
    assert code == 4
    assert out == b"b:65534:/tmp\n"
    code, out = rt.exec(st["id"], ["nosuch"])
    assert code == 127
    assert b"executable file not found in $PATH" in out


def test_exec_with_tty(rt, base_spec):
    st = rt.run(base_spec)
    code, out = rt.exec(st["id"], ["sh", "-c", "tty; test -t 0 && echo isatty"], tty=True)
    assert code == 0
    assert b"/dev/pts/" in out
    assert b"isatty" in out


def test_exec_refused_when_not_running(rt, base_spec):
    st = rt.create(base_spec)
    with pytest.raises(InvalidState, match="it is created"):
        rt.exec(st["id"], ["true"])


def _recv_until(sock, needle: bytes, timeout: float = 10.0) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    sock.settimeout(0.2)
    while needle not in data and time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        if not chunk:
            break
        data += chunk
    return data


def test_attach_to_tty_container(rt, base_spec):
    base_spec.update(command=["sh"], tty=True, stdin_open=True)
    st = rt.run(base_spec)
    path = Path(rt.attach_socket(st["id"]))
    sock = socket.socket(socket.AF_UNIX)
    with socket_path(path) as address:
        sock.connect(address)
    sock.sendall(b"echo hel''lo\n")
    assert b"hello" in _recv_until(sock, b"hello\r\n")
    # The pty comes from the container's own devpts, as with Docker.
    sock.sendall(b"tty\n")
    assert b"/dev/pts/0" in _recv_until(sock, b"/dev/pts/0")
    sock.close()  # detaching leaves the container running
    assert rt.state(st["id"])["status"] == "running"
    sock = socket.socket(socket.AF_UNIX)
    with socket_path(path) as address:
        sock.connect(address)
    sock.sendall(b"exit 5\n")
    assert rt.wait(st["id"]) == 5
    sock.close()
    assert any(b"hello" in b for _, _, b in rt.logs(st["id"]))
