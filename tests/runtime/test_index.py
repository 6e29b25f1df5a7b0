"""The container index (runtime/container/index.py): list() reads it, and it stays right.

It must agree with the containers' own files after every verb, after a create killed half
way, after a writer killed between a file and its row, without the index file at all, with a
damaged one, and a removal racing a waiter on the container's lock must leave nothing behind.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.container.fsutil import write_json

pytestmark = pytest.mark.root
PROJECT = Path(__file__).resolve().parents[2]

CHILD = """
import json, sys
from pathlib import Path
from runtime.api import Runtime
from runtime.config import RuntimeConfig
c = json.loads(sys.argv[1])
Runtime(RuntimeConfig(root=Path(c["root"]), run_root=Path(c["run_root"]), prefix=c["prefix"])
        ).create(json.loads(sys.argv[2]))
"""


def _rows(rt) -> dict:
    return rt.store.index.rows()


def _same_as_files(rt) -> None:
    """list() says what state() (which reads every file) says, container by container."""
    listed = {s["id"]: s for s in rt.list()}
    assert set(listed) == set(rt.store.ids()) - _abandoned(rt)
    for cid, st in listed.items():
        fresh = rt.state(cid)
        assert st == fresh, cid


def _abandoned(rt) -> set:
    return {cid for cid in rt.store.ids() if rt.store.abandoned(rt.store.read_record(cid))}


def test_list_follows_every_verb(rt, base_spec):
    a = rt.run(dict(base_spec, name="idx-a"))
    b = rt.create(dict(base_spec, name="idx-b"))
    assert {a["id"], b["id"]} <= set(_rows(rt))
    _same_as_files(rt)
    rt.rename("idx-b", "idx-b2")
    assert _rows(rt)[b["id"]][0]["name"] == "idx-b2"
    rt.start("idx-b2")
    rt.pause("idx-a")
    _same_as_files(rt)
    rt.unpause("idx-a")
    rt.stop("idx-a", timeout=0)
    _same_as_files(rt)
    assert {s["id"]: s["status"] for s in rt.list()}[a["id"]] == "stopped"
    rt.delete("idx-a")
    assert a["id"] not in _rows(rt)
    _same_as_files(rt)
    # The row is a summary: the image's whole config and layer list stay in config.json.
    row = _rows(rt)[b["id"]][0]
    assert "lower" not in row and set(row["image_config"]) == {"config"}


def test_index_is_private_and_not_inherited(rt, base_spec):
    st = rt.run(dict(base_spec, name="idx-fd"))
    index = rt.store.index.path
    assert (index.stat().st_mode & 0o777) == 0o600
    fds = os.listdir(f"/proc/{st['pid']}/fd")
    targets = {os.readlink(f"/proc/{st['pid']}/fd/{fd}") for fd in fds}
    assert not any(".index.db" in t for t in targets), targets


def test_rows_missing_or_stale_are_repaired(rt, base_spec):
    a = rt.create(dict(base_spec, name="idx-lost"))
    b = rt.create(dict(base_spec, name="idx-dirty"))
    # A create killed between its directory's rename and its row: found by the name scan.
    rt.store.index.drop([a["id"]])
    assert a["id"] in {s["id"] for s in rt.list()}
    assert a["id"] in _rows(rt)
    # A writer killed after its file but before its row: the dirty row is read from files.
    rt.store.index.mark_dirty(b["id"])
    rec = rt.store.read_record(b["id"])
    rec["name"] = "idx-renamed-on-disk"
    write_json(rt.store.paths(b["id"]).config_file, rec)
    assert {s["id"]: s["name"] for s in rt.list()}[b["id"]] == "idx-renamed-on-disk"
    assert _rows(rt)[b["id"]][2] is True
    rt.reconcile()  # rewrites it clean
    assert _rows(rt)[b["id"]][0]["name"] == "idx-renamed-on-disk"
    assert _rows(rt)[b["id"]][2] is False
    rec["name"] = "idx-dirty"
    rt.store.write_record(rec)
    # A row whose directory is gone (a removal killed after its rename) is dropped.
    ghost = dict(_rows(rt)[a["id"]][0], id="f" * 64)
    rt.store.index.put("f" * 64, ghost, {})
    assert "f" * 64 not in {s["id"] for s in rt.list()}
    assert "f" * 64 not in _rows(rt)
    _same_as_files(rt)


def test_index_lost_or_damaged_is_rebuilt(rt, base_spec):
    rt.run(dict(base_spec, name="idx-r1"))
    rt.create(dict(base_spec, name="idx-r2"))
    before = {s["id"]: s for s in rt.list()}
    index = rt.store.index.path
    for suffix in ("", "-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)
    from runtime.api import Runtime

    fresh = Runtime(rt.config)  # a new process's view: no open connection
    assert {s["id"]: s for s in fresh.list()} == before
    fresh.store.index._discard()
    index.write_bytes(b"this is not a database" * 100)
    again = Runtime(rt.config)
    assert {s["id"]: s for s in again.list()} == before
    assert set(before) <= set(again.store.index.rows())
    rt.store.index._discard()  # the fixture's runtime reopens the rebuilt file


def _create_paused_at(rt, spec: dict, step: str, tmp_path: Path) -> subprocess.Popen:
    fifo = tmp_path / f"pause-{step}"
    os.mkfifo(fifo)
    conf = {"root": str(rt.config.root), "run_root": str(rt.config.run_root)}
    conf["prefix"] = rt.config.prefix
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
            assert select.select([fd], [], [], 30)[0], f"create never reached {step}"
            chunk = os.read(fd, 100)
            if not chunk and proc.poll() is not None:
                raise AssertionError(f"create exited before {step}")
            got += chunk
    finally:
        os.close(fd)
    return proc


@pytest.mark.parametrize("step", ["record", "launch"])
def test_create_killed_midway_leaves_no_row(rt, base_spec, tmp_path, step):
    spec = dict(base_spec, name=f"idx-killed-{step}")
    before = set(rt.store.ids())
    proc = _create_paused_at(rt, spec, step, tmp_path)
    try:
        (cid,) = set(rt.store.ids()) - before
        assert "creating" in _rows(rt)[cid][0]  # indexed, naming its (live) creator
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert spec["name"] not in {s["name"] for s in rt.list()}
    rt.reconcile()
    assert cid not in rt.store.ids()
    assert cid not in _rows(rt)
    assert rt.run(spec)["name"] == spec["name"]  # the name is free again
    _same_as_files(rt)


WAITER = """
import json, sys
from pathlib import Path
from runtime.config import RuntimeConfig
from runtime.container.store import ContainerStore
from runtime.errors import NotFound
c = json.loads(sys.argv[1])
store = ContainerStore(RuntimeConfig(root=Path(c["root"]), run_root=Path(c["run_root"]),
                                     prefix=c["prefix"]))
print("waiting", flush=True)
try:
    with store.locked(sys.argv[2]):
        print("locked", flush=True)
except NotFound:
    print("notfound", flush=True)
"""


def test_waiter_on_a_removed_containers_lock_gets_notfound(rt, base_spec):
    """The `run --rm` race: one process removes the container while another waits for its lock
    (the post-exit hook against the CLI's delete); the waiter must not take it for a live one."""
    cid = rt.create(dict(base_spec, name="idx-lock"))["id"]
    conf = {"root": str(rt.config.root), "run_root": str(rt.config.run_root)}
    conf["prefix"] = rt.config.prefix
    with rt.store.locked(cid):
        waiter = subprocess.Popen(
            [sys.executable, "-c", WAITER, json.dumps(conf), cid],
            stdout=subprocess.PIPE,
            cwd=PROJECT,
            env=dict(os.environ, PYTHONPATH=str(PROJECT)),
        )
        assert waiter.stdout.readline() == b"waiting\n"
        rt.delete(cid, force=True)  # same process: the lock we hold does not block us
    out, _ = waiter.communicate(timeout=30)
    assert out == b"notfound\n"
    assert not rt.store.paths(cid).dir.exists()
    left = [n for n in os.listdir(rt.config.containers_dir) if not n.startswith(".index.db")]
    assert left == []
    rt.store.wait_cleanups(30)  # the files go after the answer, in the trash
    assert os.listdir(rt.store.trash_dir) == []
