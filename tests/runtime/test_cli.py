"""The Docker-vocabulary command line, run as a real process against the test's roots."""

import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.root


@pytest.fixture
def berth(rt):
    env = dict(
        os.environ,
        BERTH_ROOT=str(rt.config.root),
        BERTH_RUN_ROOT=str(rt.config.run_root),
        BERTH_PREFIX=rt.config.prefix,
        BERTH_CGROUP_ROOT=str(rt.config.cgroup_root),
    )

    def call(*args, input=None, check=True):
        proc = subprocess.run(
            [sys.executable, "-m", "runtime", *args],
            env=env,
            capture_output=True,
            input=input,
            timeout=60,
            cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
        )
        if check:
            assert proc.returncode == 0, proc.stderr.decode()
        return proc

    return call


def test_run_detached_ps_logs_exec_stop_rm(berth, rt):
    cid = (
        berth(
            "run",
            "-d",
            "--name",
            "web",
            "-m",
            "64m",
            "--pids-limit",
            "100",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "echo started; exec sleep 1000",
        )
        .stdout.decode()
        .strip()
    )
    assert len(cid) == 64
    ps = berth("ps").stdout.decode()
    assert "web" in ps and cid[:12] in ps and "Up" in ps
    deadline = time.monotonic() + 10
    while b"started" not in berth("logs", "web").stdout and time.monotonic() < deadline:
        time.sleep(0.05)
    assert berth("logs", "-t", "web").stdout.decode().split(" ", 1)[1] == "started\n"
    assert berth("exec", "web", "cat", "/etc/hostname").stdout.decode().strip() == cid[:12]
    assert berth("exec", "web", "sh", "-c", "exit 3", check=False).returncode == 3
    assert "sleep" in berth("top", "web").stdout.decode()
    assert "MiB" in berth("stats", "--no-stream", "web").stdout.decode()
    berth("pause", "web")
    assert "Paused" in berth("ps").stdout.decode()
    berth("unpause", "web")
    berth("stop", "-t", "0", "web")
    assert "Exited (137)" in berth("ps", "-a").stdout.decode()
    assert berth("wait", "web").stdout.decode().strip() == "137"
    berth("rm", "web")
    assert "web" not in berth("ps", "-a").stdout.decode()


def test_run_attached_exit_code_and_rm(berth, rt):
    proc = berth(
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 4",
        check=False,
    )
    assert proc.returncode == 4
    assert proc.stdout == b"out\n"
    assert proc.stderr == b"err\n"
    assert rt.list() == []


def test_run_interactive_stdin(berth, rt):
    proc = berth(
        "run",
        "--rm",
        "-i",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "read x; echo got:$x",
        input=b"hello\n",
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"got:hello\n"


def test_errors_are_clear(berth, rt):
    proc = berth("run", "--network", "none", "busybox", "nosuchcmd", check=False)
    assert proc.returncode == 127
    assert b'exec: "nosuchcmd": executable file not found in $PATH' in proc.stderr
    proc = berth("run", "--network", "none", "--userns", "other", "busybox", "true", check=False)
    assert proc.returncode == 125
    assert b"invalid --userns value 'other' (host or private)" in proc.stderr
    proc = berth("stop", "nosuch", check=False)
    assert proc.returncode == 125 and b"no such container: nosuch" in proc.stderr
    proc = berth(
        "run",
        "--network",
        "none",
        "--cpus",
        "1",
        "--cpu-quota",
        "50000",
        "busybox",
        "true",
        check=False,
    )
    assert b"conflicting options" in proc.stderr
    assert rt.list() == []


def test_run_detached_rm_removes_the_container_when_it_exits(berth, rt):
    cid = berth("run", "-d", "--rm", "--network", "none", "busybox", "sh", "-c", "sleep 0.2")
    cid = cid.stdout.decode().strip()
    deadline = time.monotonic() + 15
    while cid in rt.store.ids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cid not in rt.store.ids()
    assert cid not in rt.cgroups.list()


def test_rename(berth, rt):
    berth("create", "--name", "before", "--network", "none", "busybox", "sleep", "1000")
    berth("create", "--name", "other", "--network", "none", "busybox", "sleep", "1000")
    berth("rename", "before", "after")
    berth("rename", "after", "after")  # already so named: nothing to do
    assert sorted(s["name"] for s in rt.list()) == ["after", "other"]
    proc = berth("rename", "after", "other", check=False)
    assert proc.returncode != 0 and b'name "/other" is already in use' in proc.stderr
    proc = berth("rename", "after", "bad/name", check=False)
    assert proc.returncode == 125 and b"invalid container name" in proc.stderr
    berth("start", "after")
    assert rt.state("after")["status"] == "running"
    proc = berth("start", "before", check=False)
    assert b"no such container: before" in proc.stderr


def _read_until(fd, needle: bytes, timeout: float = 15.0) -> bytes:
    import select

    data = b""
    deadline = time.monotonic() + timeout
    while needle not in data and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    return data


def test_run_it_then_detach_and_attach(rt):
    import pty

    env = dict(
        os.environ,
        BERTH_ROOT=str(rt.config.root),
        BERTH_RUN_ROOT=str(rt.config.run_root),
        BERTH_PREFIX=rt.config.prefix,
    )
    cwd = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    master, slave = pty.openpty()
    cmd = [
        sys.executable,
        "-m",
        "runtime",
        "run",
        "-it",
        "--name",
        "tty1",
        "--network",
        "none",
        "busybox",
        "sh",
    ]
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd)
    os.close(slave)
    try:
        assert b"# " in _read_until(master, b"# ")  # the shell's prompt: it reads input now
        os.write(master, b"echo hel''lo\r")
        assert b"hello" in _read_until(master, b"hello\r\n")
        os.write(master, b"\x10\x11")  # ctrl-p ctrl-q: detach, the container keeps running
        assert proc.wait(timeout=15) == 0
        assert rt.state("tty1")["status"] == "running"
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime", "attach", "tty1"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=cwd,
    )
    os.close(slave)
    try:
        # Type only once attach has made the terminal raw: tty.setraw flushes pending input.
        import termios

        deadline = time.monotonic() + 15
        while termios.tcgetattr(master)[3] & termios.ECHO and time.monotonic() < deadline:
            time.sleep(0.05)
        os.write(master, b"exit 6\r")
        assert proc.wait(timeout=15) == 6
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    assert rt.state("tty1")["exit_code"] == 6


def test_exec_it(berth, rt):
    import pty

    berth("run", "-d", "--name", "ex1", "--network", "none", "busybox", "sleep", "1000")
    env = dict(
        os.environ,
        BERTH_ROOT=str(rt.config.root),
        BERTH_RUN_ROOT=str(rt.config.run_root),
        BERTH_PREFIX=rt.config.prefix,
    )
    cwd = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime", "exec", "-it", "ex1", "sh"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=cwd,
    )
    os.close(slave)
    try:
        assert b"# " in _read_until(master, b"# ")
        os.write(master, b"tty; exit 2\r")
        out = _read_until(master, b"/dev/pts/")
        assert b"/dev/pts/" in out
        assert proc.wait(timeout=15) == 2
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()


def test_killing_the_caller_stops_no_container(rt):
    import signal

    env = dict(
        os.environ,
        BERTH_ROOT=str(rt.config.root),
        BERTH_RUN_ROOT=str(rt.config.run_root),
        BERTH_PREFIX=rt.config.prefix,
    )
    cwd = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runtime",
            "run",
            "--name",
            "fg",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "echo up; exec sleep 1000",
        ],
        stdout=subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    assert proc.stdout.readline() == b"up\n"  # attached and running in the foreground
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    time.sleep(0.2)
    assert rt.state("fg")["status"] == "running"


def test_ps_shows_the_images_command_when_the_spec_has_none(berth, rt):
    """`ps` names what runs, from the image's Cmd when the spec leaves it out (issue 17)."""
    berth("create", "--name", "imgcmd", "--network", "none", "busybox")
    try:
        listing = berth("ps", "-a", "--no-trunc").stdout.decode()
        line = next(row for row in listing.splitlines() if row.endswith("imgcmd"))
        assert '"sh"' in line, listing
        assert rt.state("imgcmd")["command"] == ["sh"]
    finally:
        berth("rm", "-f", "imgcmd", check=False)
