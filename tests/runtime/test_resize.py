"""Window sizes reach a TTY container's pty: Runtime.resize and the CLI's attach (SIGWINCH)."""

import fcntl
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from runtime.errors import InvalidState

pytestmark = pytest.mark.root
PROJECT = Path(__file__).resolve().parents[2]
# Print the terminal's size now and after every SIGWINCH.
SHOW_SIZE = "trap 'stty size' WINCH; stty size; while true; do sleep 0.05; done"


def _sizes(rt, ref) -> list[str]:
    return [b.decode().strip() for _, _, b in rt.logs(ref)]


def _wait_size(rt, ref, want: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if want in _sizes(rt, ref):
            return True
        time.sleep(0.05)
    return False


def test_resize_sets_the_pty_size_and_signals_the_program(rt, base_spec):
    base_spec.update(command=["sh", "-c", SHOW_SIZE], tty=True)
    cid = rt.run(base_spec)["id"]
    rt.resize(cid, 100, 33)
    assert _wait_size(rt, cid, "33 100")
    rt.resize(cid, 120, 40)
    assert _wait_size(rt, cid, "40 120")


def test_resize_refused_without_tty_or_process(rt, base_spec):
    cid = rt.create(base_spec)["id"]
    with pytest.raises(InvalidState, match="no TTY"):
        rt.resize(cid, 80, 24)
    base_spec.update(command=["true"], tty=True)
    cid = rt.run(base_spec)["id"]
    rt.wait(cid)
    with pytest.raises(InvalidState):
        rt.resize(cid, 80, 24)


def _set_size(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def test_cli_attach_passes_the_window_size_and_its_changes(rt, base_spec):
    base_spec.update(name="winch", command=["sh", "-c", SHOW_SIZE], tty=True)
    cid = rt.run(base_spec)["id"]
    env = dict(
        os.environ,
        BERTH_ROOT=str(rt.config.root),
        BERTH_RUN_ROOT=str(rt.config.run_root),
        BERTH_PREFIX=rt.config.prefix,
    )
    master, slave = pty.openpty()
    _set_size(master, 90, 30)
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime", "attach", "winch"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=PROJECT,
        start_new_session=True,
    )
    os.close(slave)
    try:
        assert _wait_size(rt, cid, "30 90")  # the size at attach time
        _set_size(master, 132, 43)  # the kernel sends SIGWINCH to the attach process
        os.killpg(proc.pid, signal.SIGWINCH)  # (no controlling tty here: send it ourselves)
        assert _wait_size(rt, cid, "43 132")
        os.write(master, b"\x10\x11")  # detach
        assert proc.wait(timeout=15) == 0
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
