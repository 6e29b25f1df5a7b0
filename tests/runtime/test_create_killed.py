"""create is safe to kill at any step: the name comes free again and nothing is left behind."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from net_runtime import free_port, net_runtime, nft_ports

from runtime.errors import Conflict

pytestmark = pytest.mark.root
PROJECT = Path(__file__).resolve().parents[2]

CHILD = """
import json, sys
from pathlib import Path
from runtime.api import Runtime
from runtime.config import RuntimeConfig
c = json.loads(sys.argv[1])
config = RuntimeConfig(root=Path(c["root"]), run_root=Path(c["run_root"]), prefix=c["prefix"],
                       extra=c["extra"])
Runtime(config).create(json.loads(sys.argv[2]))
"""


@pytest.fixture(scope="module")
def nrt():
    """A Runtime with a bridge network of its own."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    with net_runtime() as rt:
        yield rt


def _spec(port: int) -> dict:
    return {
        "image": "busybox",
        "name": "halfmade",
        "command": ["sleep", "1000"],
        "network": {"ports": [{"container_port": 80, "host_port": port}]},
    }


def _creator_paused_at(rt, spec: dict, step: str, tmp_path: Path) -> subprocess.Popen:
    """A process running create(spec) that stopped at `step` (the runtime's test hook)."""
    fifo = tmp_path / f"pause-{step}"
    os.mkfifo(fifo)
    cfg = rt.config
    conf = {
        "root": str(cfg.root),
        "run_root": str(cfg.run_root),
        "prefix": cfg.prefix,
        "extra": cfg.extra,
    }
    env = dict(
        os.environ,
        BERTH_TEST_PAUSE_AT=step,
        BERTH_TEST_PAUSE_FIFO=str(fifo),
        PYTHONPATH=str(PROJECT),
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(conf), json.dumps(spec)], env=env, cwd=PROJECT
    )
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        got = b""
        while not got.endswith(b"\n"):
            ready = select.select([fd], [], [], 30)[0]
            assert ready, f"create never reached step {step}"
            chunk = os.read(fd, 100)
            if not chunk and proc.poll() is not None:
                raise AssertionError(f"create exited with {proc.returncode} before {step}")
            got += chunk
        assert got.decode().strip() == step
    finally:
        os.close(fd)
    return proc


def _processes_of(cid: str) -> list[int]:
    """Pids whose command line names container `cid` (its shim does)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if cid.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("step", ["record", "name", "cgroup", "launch"])
def test_create_killed_at_a_step_leaves_nothing(nrt, tmp_path, step):
    port = free_port()
    spec = _spec(port)
    proc = _creator_paused_at(nrt, spec, step, tmp_path)
    try:
        if step != "record":
            # A create still in progress owns its name: nobody may take it.
            with pytest.raises(Conflict):
                nrt.create(spec)
        (old,) = nrt.store.ids()
    finally:
        _kill(proc)
    # The same name (and host port) is free again for the next create.
    state = nrt.create(spec)
    try:
        assert state["status"] == "created"
        assert state["network"]["ports"][0]["host_port"] == port
        nrt.reconcile()
        assert _processes_of(old) == []  # the half-made container's shim and init are gone
        assert nrt.store.ids() == [state["id"]]
        assert [s["name"] for s in nrt.list()] == ["halfmade"]
        assert nrt.cgroups.list() == [state["id"]]
        assert list(nrt.networks.store.load().endpoints) == [state["id"]]
        assert str(port) in nft_ports(nrt.config.prefix)
        assert sorted(os.listdir(nrt.config.run_containers_dir)) == [state["id"]]
        assert sorted(os.listdir(nrt.store.names_dir)) == ["halfmade"]
        nrt.start(state["id"])
        assert nrt.state(state["id"])["status"] == "running"
    finally:
        nrt.delete(state["id"], force=True)
    assert nrt.store.ids() == [] and nrt.cgroups.list() == []


def test_reconcile_clears_a_half_made_container(nrt, tmp_path):
    spec = _spec(free_port())
    _kill(_creator_paused_at(nrt, spec, "cgroup", tmp_path))
    (cid,) = nrt.store.ids()
    assert nrt.list() == []  # never shown: its create did not finish
    assert cid in nrt.reconcile()
    assert nrt.store.ids() == [] and nrt.cgroups.list() == []
    assert nrt.store.name_owner("halfmade") is None


def test_reconcile_removes_a_directory_a_create_never_published(nrt):
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that names no process now
    leftover = nrt.config.containers_dir / (".new-" + "ab" * 32)
    leftover.mkdir(parents=True)
    record = {"id": "ab" * 32, "name": "x", "creating": {"pid": dead.pid, "start": 1}}
    (leftover / "config.json").write_text(json.dumps(record))
    nrt.reconcile()
    assert not leftover.exists()
    assert nrt.list() == []
