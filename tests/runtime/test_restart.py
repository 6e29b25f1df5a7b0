"""Restart policies applied by the shim; a user stop always wins."""

import os
import signal
import time

import pytest

pytestmark = pytest.mark.root


def _wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_on_failure_with_max_retries(rt, base_spec):
    base_spec.update(
        command=["sh", "-c", "echo run; exit 3"], restart={"name": "on-failure", "max_retries": 2}
    )
    st = rt.run(base_spec)
    _wait_for(
        lambda: (
            rt.state(st["id"])["status"] == "stopped" and rt.state(st["id"])["restart_count"] == 2
        )
    )
    st = rt.state(st["id"])
    assert st["exit_code"] == 3
    assert [b for _, _, b in rt.logs(st["id"])] == [b"run\n"] * 3


def test_on_failure_does_not_restart_success(rt, base_spec):
    base_spec.update(command=["true"], restart={"name": "on-failure"})
    st = rt.run(base_spec)
    assert rt.wait(st["id"]) == 0
    time.sleep(0.3)
    assert rt.state(st["id"])["status"] == "stopped"
    assert rt.state(st["id"])["restart_count"] == 0


def test_always_restarts_after_crash_but_not_after_stop(rt, base_spec):
    base_spec["restart"] = {"name": "always"}
    st = rt.run(base_spec)
    first = st["pid"]
    os.kill(first, signal.SIGKILL)  # a crash, not a user stop
    new = _wait_for(
        lambda: (s := rt.state(st["id"]))["status"] == "running" and s["pid"] != first and s
    )
    assert new["restart_count"] == 1
    # The respawned container is fully set up again (namespaces, hardening).
    code, out = rt.exec(st["id"], ["cat", "/proc/1/cmdline"])
    assert code == 0 and out.startswith(b"sleep")
    rt.stop(st["id"], timeout=0)
    time.sleep(0.5)
    assert rt.state(st["id"])["status"] == "stopped"


def test_tty_container_gets_a_new_pty_on_restart(rt, base_spec):
    base_spec.update(
        command=["sh", "-c", "tty; exit 1"],
        tty=True,
        restart={"name": "on-failure", "max_retries": 1},
    )
    st = rt.run(base_spec)
    _wait_for(
        lambda: (
            rt.state(st["id"])["status"] == "stopped" and rt.state(st["id"])["restart_count"] == 1
        )
    )
    assert [b for _, _, b in rt.logs(st["id"])] == [b"/dev/pts/0\r\n"] * 2
