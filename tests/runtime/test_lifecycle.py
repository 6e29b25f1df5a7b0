"""Create, start, state, kill, stop, delete: real containers on the real kernel."""

import os

import pytest

from runtime.errors import CommandNotExecutable, CommandNotFound, Conflict, InvalidSpec, InvalidState, NotFound

pytestmark = pytest.mark.root


def test_create_start_kill_delete(rt, base_spec):
    st = rt.create(base_spec)
    assert st["status"] == "created"
    assert st["pid"] > 0
    st = rt.start(st["id"])
    assert st["status"] == "running"
    # PID 1 inside is the program itself.
    with open(f"/proc/{st['pid']}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[0] == b"sleep"
    rt.kill(st["name"], "KILL")
    st = rt.state(st["id"])
    assert st["status"] == "stopped"
    assert st["exit_code"] == 137
    rt.delete(st["id"])
    with pytest.raises(NotFound):
        rt.state(st["id"])
    assert not (rt.config.containers_dir / st["id"]).exists()
    assert not (rt.config.run_containers_dir / st["id"]).exists()
    assert st["id"] not in rt.cgroups.list()
