"""Checkpoint and restore with real CRIU: the counting loop goes on where it was."""

import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from runtime.container import restore_userns
from runtime.errors import Conflict, InvalidSpec, InvalidState
from tests.criu_support import criu_problem

_PROBLEM = criu_problem()
pytestmark = [
    pytest.mark.root,
    # Debian 12's CRIU 3.17 cannot run on 6.x kernels; the reason names what is missing.
    pytest.mark.skipif(bool(_PROBLEM), reason=_PROBLEM or "criu works"),
]

# Counts in the shell's memory only; each line is the next number.
LOOP = "i=0; while true; do i=$((i+1)); echo $i; sleep 0.05; done"


def _numbers(rt, ref) -> list[int]:
    return [int(b) for _, _, b in rt.logs(ref) if b.strip().isdigit()]


def _wait_count(rt, ref, at_least: int, timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = _numbers(rt, ref)
        if got and got[-1] >= at_least:
            return got
        time.sleep(0.05)
    raise AssertionError(f"the count of {ref} never reached {at_least}: {_numbers(rt, ref)[-5:]}")


def _counter(rt, name, network="none", userns="host", labels=None, mounts=None):
    spec = {
        "image": "busybox",
        "name": name,
        "command": ["sh", "-c", LOOP],
        "network": {"mode": network},
        "labels": labels or {},
        "mounts": mounts or [],
    }
    if userns == "host":  # else the default: a user namespace of its own (issue 14)
        spec["namespaces"] = {"user": "host"}
    st = rt.run(spec)
    _wait_count(rt, name, 5)
    return st


def _uid_map(rt, ref) -> tuple[int, int, int]:
    """The restored init's uid_map (one line: inside, host, count)."""
    with open(f"/proc/{rt.state(ref)['pid']}/uid_map") as f:
        return tuple(int(v) for v in f.read().split())


def _range(rt, ref) -> tuple[int, int, int]:
    """The uid_map a container's record asks for (0 -> its range's first id)."""
    info = rt.store.read_record(rt.store.resolve(ref))["userns"]
    return (0, info["first"], info["count"])


def _tmp_criu_dirs() -> set[str]:
    return {p for p in os.listdir("/tmp") if "criu" in p.lower()}


def _no_leftovers(rt):
    scratch = Path(rt.config.root) / "tmp"
    assert not scratch.exists() or not any(scratch.iterdir()), list(scratch.iterdir())
    for cid in rt.store.ids():
        run = rt.store.paths(cid).run_dir
        assert not (run / "criu-restore").exists()
        assert not os.path.exists(restore_userns.stage_dir(cid))
        assert not list((rt.store.paths(cid).dir / "checkpoints").glob("*.partial"))


@pytest.mark.parametrize("userns", ["host", "private"])
def test_checkpoint_and_restore_continue_counting(rt, userns):
    before = _tmp_criu_dirs()
    _counter(rt, "cr-count", network="bridge", userns=userns)
    ip = rt.state("cr-count")["network"]["networks"]["bridge"]["ip"]
    if userns == "private":
        mapped = _uid_map(rt, "cr-count")
        assert mapped == _range(rt, "cr-count") and mapped[1] > 0
    rt.checkpoint("cr-count", "one")
    assert rt.state("cr-count")["status"] == "stopped"
    assert [c["name"] for c in rt.checkpoints("cr-count")] == ["one"]
    last = _numbers(rt, "cr-count")[-1]
    time.sleep(0.3)
    assert _numbers(rt, "cr-count")[-1] == last  # dumped and stopped: no counting
    st = rt.start("cr-count", checkpoint="one")
    assert st["status"] == "running" and st["network"]["networks"]["bridge"]["ip"] == ip
    got = _wait_count(rt, "cr-count", last + 5)
    after = got[got.index(last) + 1 :]
    assert after[:3] == [last + 1, last + 2, last + 3]  # from where it was, not from 1
    if userns == "private":  # the same range, and the idmapped rootfs writable as before
        assert _uid_map(rt, "cr-count") == mapped
        code, out = rt.exec("cr-count", ["sh", "-c", "echo w > /w && stat -c %u /w /bin/sh"])
        assert (code, out) == (0, b"0\n0\n")
        # The images were lent to the range's root for the restore only.
        images = rt.store.paths(st["id"]).dir / "checkpoints" / "one" / "images"
        assert (images.stat().st_gid, images.stat().st_mode & 0o777) == (0, 0o700)
    # The shim watches the restored process: stats, stop and the exit code work.
    assert rt.stats("cr-count")
    rt.stop("cr-count", timeout=1)
    assert rt.state("cr-count")["status"] == "stopped"
    assert rt.state("cr-count")["exit_code"] == 137
    rt.checkpoint_remove("cr-count", "one")
    assert rt.checkpoints("cr-count") == []
    _no_leftovers(rt)
    assert _tmp_criu_dirs() <= before


def test_leave_running_keeps_counting(rt):
    _counter(rt, "cr-live", userns="private")
    rt.checkpoint("cr-live", "snap", leave_running=True)
    assert rt.state("cr-live")["status"] == "running"
    now = _numbers(rt, "cr-live")[-1]
    _wait_count(rt, "cr-live", now + 3)
    with pytest.raises(Conflict):
        rt.checkpoint("cr-live", "snap", leave_running=True)
    with pytest.raises(InvalidState):
        rt.start("cr-live", checkpoint="snap")  # it runs: restore refused
    rt.stop("cr-live", timeout=0)
    rt.start("cr-live", checkpoint="snap")
    got = _wait_count(rt, "cr-live", 3)
    assert got[-1] >= 3
    assert _uid_map(rt, "cr-live") == _range(rt, "cr-live")
    _no_leftovers(rt)


def test_bad_input_leaves_the_source_running(rt):
    _counter(rt, "cr-bad")
    rt.pause("cr-bad")
    with pytest.raises(InvalidState, match="paused"):
        rt.checkpoint("cr-bad", "x")
    rt.unpause("cr-bad")
    with pytest.raises(InvalidSpec):
        rt.checkpoint("cr-bad", "../x")
    rt.stop("cr-bad", timeout=0)
    with pytest.raises(InvalidState, match="stopped"):
        rt.checkpoint("cr-bad", "x")
    st = rt.run(
        {
            "image": "busybox",
            "name": "cr-dev",
            "command": ["sleep", "100"],
            "network": {"mode": "none"},
            "devices": ["/dev/zero:/dev/berthzero"],
        }
    )
    with pytest.raises(InvalidSpec, match="device"):
        rt.checkpoint(st["id"], "x")
    assert rt.state(st["id"])["status"] == "running"
    assert rt.checkpoints(st["id"]) == []


def test_export_import_under_a_new_name(rt, tmp_path):
    volume = [{"type": "volume", "source": f"crvol-{os.getpid()}", "target": "/vol"}]
    _counter(rt, "cr-src", userns="private", mounts=volume)
    archive = tmp_path / "cp.tar"
    rt.exec("cr-src", ["sh", "-c", "echo kept > /data.txt && echo v > /vol/f"])
    rt.checkpoint("cr-src", "exp", leave_running=True, export=str(archive))
    assert rt.checkpoints("cr-src") == []  # exported: no local copy
    last = _numbers(rt, "cr-src")[-1]
    st = rt.restore(str(archive), name="cr-copy")
    assert st["name"] == "cr-copy" and st["status"] == "running"
    got = _wait_count(rt, "cr-copy", 3)
    assert got[0] > 1 and got[0] <= last + 3  # the copy starts from the dump's count
    code, out = rt.exec("cr-copy", ["cat", "/data.txt"])
    assert out == b"kept\n"
    assert rt.state("cr-src")["status"] == "running"
    assert _uid_map(rt, "cr-copy") == _uid_map(rt, "cr-src")  # the key's range: the same
    mapped = _uid_map(rt, "cr-src")
    for name in ("cr-src", "cr-copy"):  # the volume is then the moving container's alone
        rt.delete(name, force=True)
    # A key with another range here (a migration to a host that gave the team another):
    # the checkpoint's map is rewritten to it, the copy runs on in that range, and the
    # volume (as a migration copies it, with the source's owners) follows it there.
    st = rt.restore(str(archive), name="cr-other", labels={"io.berth.userns": "cr-team"})
    assert st["status"] == "running"
    assert _uid_map(rt, "cr-other") == _range(rt, "cr-other") != mapped
    assert _wait_count(rt, "cr-other", 3)[0] > 1
    code, out = rt.exec("cr-other", ["sh", "-c", "cat /data.txt /vol/f && echo w >> /vol/f"])
    assert (code, out) == (0, b"kept\nv\n")
    data = rt.config.volumes_dir / volume[0]["source"] / "_data"
    assert os.stat(data / "f").st_uid == _range(rt, "cr-other")[1]
    _no_leftovers(rt)


def test_tampered_archive_is_refused(rt, tmp_path):
    _counter(rt, "cr-tamper")
    archive = tmp_path / "cp.tar"
    rt.checkpoint("cr-tamper", "t", leave_running=True, export=str(archive))
    bad = tmp_path / "bad.tar"
    with tarfile.open(archive) as src, tarfile.open(bad, "w") as out:
        for member in src:
            data = src.extractfile(member).read()
            if member.name.startswith("images/pages"):
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            out.addfile(member, io.BytesIO(data))
    ids = set(rt.store.ids())
    with pytest.raises(InvalidSpec, match="SHA-256"):
        rt.restore(str(bad), name="cr-tampered")
    assert set(rt.store.ids()) == ids
    # An archive from before user namespaces were the default (its spec names none) is
    # restored in the user namespace its images ran in (the host's), not the new default.
    old = tmp_path / "old.tar"
    with tarfile.open(archive) as src, tarfile.open(old, "w") as out:
        for member in src:
            data = src.extractfile(member).read()
            if member.name == "manifest.json":
                manifest = json.loads(data)
                del manifest["spec"]["namespaces"]["user"]
                data = json.dumps(manifest).encode()
                member.size = len(data)
            out.addfile(member, io.BytesIO(data))
    st = rt.restore(str(old), name="cr-old")
    assert st["status"] == "running"
    assert rt.store.read_record(st["id"])["spec"]["namespaces"]["user"] == "host"
    _no_leftovers(rt)


def test_cli_checkpoint_ls_rm_start(rt):
    env = dict(
        os.environ,
        BERTH_ROOT=str(rt.config.root),
        BERTH_RUN_ROOT=str(rt.config.run_root),
        BERTH_PREFIX=rt.config.prefix,
        BERTH_CGROUP_ROOT=str(rt.config.cgroup_root),
    )

    def berth(*args):
        proc = subprocess.run(
            [sys.executable, "-m", "runtime", *args],
            env=env,
            capture_output=True,
            timeout=60,
            cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
        )
        assert proc.returncode == 0, proc.stderr.decode()
        return proc.stdout.decode()

    _counter(rt, "cr-cli")
    berth("checkpoint", "create", "cr-cli", "c1")
    assert "c1" in berth("checkpoint", "ls", "cr-cli")
    last = _numbers(rt, "cr-cli")[-1]
    berth("start", "--checkpoint", "c1", "cr-cli")
    _wait_count(rt, "cr-cli", last + 3)
    berth("checkpoint", "rm", "cr-cli", "c1")
    assert "c1" not in berth("checkpoint", "ls", "cr-cli")


@pytest.mark.parametrize("userns", ["host", "private"])
def test_a_tty_container_restores_with_a_new_terminal(rt, userns):
    rt.run(
        {
            "image": "busybox",
            "name": "cr-tty",
            "command": ["sh", "-c", LOOP],
            "network": {"mode": "none"},
            "namespaces": {"user": userns},
            "tty": True,
        }
    )
    _wait_count(rt, "cr-tty", 5)
    rt.checkpoint("cr-tty", "t")
    last = _numbers(rt, "cr-tty")[-1]
    st = rt.start("cr-tty", checkpoint="t")
    assert st["status"] == "running"
    got = _wait_count(rt, "cr-tty", last + 3)  # the shim reads the new terminal: logs go on
    assert got[got.index(last) + 1] == last + 1
    # The restored shell writes to a terminal still (output carries the pty's \r\n).
    code, out = rt.exec("cr-tty", ["sh", "-c", "ls -l /proc/1/fd/1"])
    assert code == 0 and b"/dev/pts/" in out, out
    rt.stop("cr-tty", timeout=1)
    _no_leftovers(rt)


def test_an_established_connection_survives_with_tcp_established(rt):
    """`--tcp-established`: a connection from the host to the default container (a user
    namespace of its own) made before the checkpoint carries on after the restore; its
    address is on the test's own bridge network, in a namespace the test made."""
    import socket

    rt.run(
        {
            "image": "busybox",
            "name": "cr-tcp",
            "command": ["nc", "-l", "-p", "7000", "-e", "cat"],  # echoes one connection
            "network": {"mode": "bridge"},
        }
    )
    ip = rt.state("cr-tcp")["network"]["networks"]["bridge"]["ip"]
    deadline = time.monotonic() + 10
    while True:
        try:
            conn = socket.create_connection((ip, 7000), timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    with conn:
        conn.sendall(b"before\n")
        assert conn.recv(64) == b"before\n"
        rt.checkpoint("cr-tcp", "tcp", tcp_established=True)
        assert rt.state("cr-tcp")["status"] == "stopped"
        st = rt.start("cr-tcp", checkpoint="tcp")
        assert st["network"]["networks"]["bridge"]["ip"] == ip
        conn.sendall(b"after\n")  # the same socket: the server's end was restored
        assert conn.recv(64) == b"after\n"
    rt.delete("cr-tcp", force=True)
    _no_leftovers(rt)
