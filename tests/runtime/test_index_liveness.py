"""list() serves each container's kept view from the index (runtime/container/listing.py).

A kept view must never hide a change: a pause (no file changes), an exit the monitor records,
a start, a container killed behind the monitor's back (shown once the monitor records it), a
monitor killed with its program, a removal. `ps` answers from
the views without loading runtime.api. RACY_NS is set to 0 so that views are kept at once;
each change that only the directories' ctimes reveal waits a clock tick first (the ctime of
the change must differ from the one the view was keyed with; listing refuses, outside tests,
keys younger than a second). A monitor killed with its program (nothing written) is seen
through the processes the view names, and the reconcile pass records the exit.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from runtime.container import boot, listing
from runtime.container.fsutil import read_json
from runtime.container.launch import wait_gone

pytestmark = pytest.mark.root


@pytest.fixture
def fresh_views(monkeypatch):
    """Views kept however recent the change (see the module's docstring)."""
    monkeypatch.setattr(listing, "RACY_NS", 0)


def _tick() -> None:
    """Let the kernel's coarse clock, which stamps ctimes, move on (a few ms)."""
    time.sleep(0.03)


def _kept(rt, cid) -> bool:
    return rt.store.index.views()[cid][3] is not None


def _listed(rt, cid) -> dict:
    return {s["id"]: s for s in rt.list()}[cid]


def _same_as_state(rt, cid) -> dict:
    """list()'s entry equals state()'s (which observes every file); returns it."""
    listed = _listed(rt, cid)
    assert listed == rt.state(cid)
    return listed


def _wait_exit_recorded(rt, cid) -> None:
    """Until the shim has recorded the exit and gone (it removes its pid file last)."""
    paths = rt.store.paths(cid)
    deadline = time.monotonic() + 30
    while paths.shim_file.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not paths.shim_file.exists()


def test_views_follow_pause_exit_start_and_removal(rt, base_spec, fresh_views):
    a = rt.run(dict(base_spec, name="live-a"))["id"]
    b = rt.create(dict(base_spec, name="live-b"))["id"]
    assert _same_as_state(rt, a)["status"] == "running"
    assert _same_as_state(rt, b)["status"] == "created"
    assert _kept(rt, a) and _kept(rt, b)
    # Pause and unpause change no file: releasing the container's lock drops the view.
    rt.pause(a)
    assert _same_as_state(rt, a)["status"] == "paused"
    rt.unpause(a)
    assert _same_as_state(rt, a)["status"] == "running"
    assert _kept(rt, a)
    # Killed behind the runtime's back: the monitor records the exit, list() shows it.
    _tick()
    os.kill(rt.state(a)["pid"], signal.SIGKILL)
    _wait_exit_recorded(rt, a)
    listed = _same_as_state(rt, a)
    assert listed["status"] == "stopped" and listed["exit_code"] == 137
    rt.start(b)
    assert _same_as_state(rt, b)["status"] == "running"
    rt.delete(a)
    assert a not in {s["id"] for s in rt.list()}
    assert a not in rt.store.index.views()


def test_lost_monitor_is_listed_at_once_and_recorded_by_the_reconcile_pass(
    rt, base_spec, fresh_views
):
    cid = rt.run(dict(base_spec, name="live-lost"))["id"]
    assert _same_as_state(rt, cid)["status"] == "running" and _kept(rt, cid)
    _tick()
    shim = read_json(rt.store.paths(cid).shim_file)
    os.kill(shim["shim"], signal.SIGKILL)  # monitor and program gone, nobody writes a file
    os.kill(shim["pid"], signal.SIGKILL)
    wait_gone(shim["shim"])
    wait_gone(shim["pid"])
    # Nothing was written, yet list() sees the view's processes gone (zombies included):
    assert _same_as_state(rt, cid)["status"] == "stopped"
    # The agent's pass records the exit the monitor could not:
    assert [r["id"] for r in boot.reap_all(rt)] == [cid]
    listed = _same_as_state(rt, cid)
    assert listed["status"] == "stopped" and listed["exit_code"] == boot.UNKNOWN_EXIT
    # Runtime.reconcile() forgets every view: the next list observes every container.
    rt.reconcile()
    assert not _kept(rt, cid)
    assert _same_as_state(rt, cid)["status"] == "stopped"


def test_a_view_observed_before_a_change_is_not_stored(rt, base_spec, fresh_views):
    cid = rt.run(dict(base_spec, name="live-gen"))["id"]
    rt.list()
    dirty, gen, key, view = rt.store.index.views()[cid]
    assert view is not None and not dirty
    rt.store.index.invalidate(cid)  # what a lock holder's release does
    rt.store.index.store_views([(cid, gen, key, view)])  # a list that observed before it
    assert not _kept(rt, cid)
    # A dirty row (a writer between its file and its row) is never served from a view.
    rt.list()
    rt.store.index.mark_dirty(cid)
    assert rt.store.index.views()[cid][0]
    assert _same_as_state(rt, cid)["status"] == "running"


def test_ps_answers_from_the_views_without_the_runtime_api(
    rt, base_spec, fresh_views, capsys, monkeypatch
):
    from runtime.cli import main
    from runtime.cli.ps import list_all

    cid = rt.run(dict(base_spec, name="live-ps"))["id"]
    rt.list()  # keeps every view

    def no_runtime():
        raise AssertionError("ps observed a container whose view was valid")

    from runtime.container.store import ContainerStore

    assert cid in {s["id"] for s in listing.list_containers(ContainerStore(rt.config), no_runtime)}
    listed = [{k: v for k, v in s.items() if k != "spec"} for s in rt.list()]
    assert [{k: v for k, v in s.items() if k != "spec"} for s in list_all(rt.config)] == listed
    assert cid in {s["id"] for s in listed}
    monkeypatch.setenv("BERTH_ROOT", str(rt.config.root))
    monkeypatch.setenv("BERTH_RUN_ROOT", str(rt.config.run_root))
    monkeypatch.setenv("BERTH_PREFIX", rt.config.prefix)
    assert main(["ps"]) == 0
    out = capsys.readouterr().out
    assert cid[:12] in out and "live-ps" in out and "Up " in out
