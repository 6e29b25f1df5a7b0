"""Create, start, state, kill, stop, delete: real containers on the real kernel."""

import os
import time
from pathlib import Path

import pytest

from runtime.errors import (
    CommandNotExecutable,
    CommandNotFound,
    Conflict,
    InvalidSpec,
    InvalidState,
    NotFound,
)

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


def wait_log(rt, ref, text: bytes, timeout: float = 10.0) -> None:
    """Wait until the container's log holds a line (the program reached that point)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(b == text for _, _, b in rt.logs(ref)):
            return
        time.sleep(0.02)
    raise AssertionError(f"{text!r} never appeared in the log")


def _out(rt, ref, *argv):
    code, out = rt.exec(ref, list(argv))
    assert code == 0, out
    return out.decode()


def test_run_executes_at_once_and_records_exit(rt, base_spec):
    base_spec["command"] = ["sh", "-c", "echo hello; echo oops >&2; exit 3"]
    st = rt.run(base_spec)
    assert rt.wait(st["id"]) == 3
    st = rt.state(st["id"])
    assert st["status"] == "stopped"
    assert st["exit_code"] == 3
    assert st["finished_at"] and st["started_at"]
    logs = [(s, b) for s, _, b in rt.logs(st["id"])]
    assert ("stdout", b"hello\n") in logs
    assert ("stderr", b"oops\n") in logs


def test_run_wait_then_delete_never_meets_a_finishing_monitor(rt, base_spec):
    # `wait` answers once the exit is recorded, while the monitor may still be finishing: a
    # plain delete right after it waits for the monitor instead of refusing "restarting".
    base_spec["command"] = ["/bin/true"]
    base_spec["namespaces"] = {"user": "private"}  # the default's longer path (bench runs)
    base_spec["limits"] = {"memory": 64 * 1024 * 1024, "pids": 64}
    for _ in range(20):
        st = rt.run(base_spec)
        assert rt.wait(st["id"]) == 0
        rt.delete(st["id"])
        with pytest.raises(NotFound):
            rt.state(st["id"])


def test_unknown_command_exits_127_and_leaves_nothing(rt, base_spec):
    base_spec["command"] = ["nosuchprogram"]
    base_spec["name"] = "missing-cmd"
    before = set(os.listdir(rt.config.containers_dir))
    with pytest.raises(CommandNotFound) as err:
        rt.run(base_spec)
    assert err.value.exit_code == 127
    assert 'exec: "nosuchprogram": executable file not found in $PATH' in str(err.value)
    assert set(os.listdir(rt.config.containers_dir)) == before
    assert not any(c not in before for c in rt.cgroups.list())
    with pytest.raises(NotFound):
        rt.state("missing-cmd")


def test_not_executable_exits_126(rt, base_spec):
    base_spec["command"] = ["/etc/passwd"]
    with pytest.raises(CommandNotExecutable) as err:
        rt.run(base_spec)
    assert err.value.exit_code == 126


def test_duplicate_and_invalid_names(rt, base_spec):
    base_spec["name"] = "dup"
    rt.create(base_spec)
    with pytest.raises(Conflict, match='name "/dup" is already in use'):
        rt.create(base_spec)
    base_spec["name"] = "bad name!"
    with pytest.raises(InvalidSpec, match="invalid container name"):
        rt.create(base_spec)
    assert len(rt.list()) == 1


def test_state_machine_refuses_illegal_moves(rt, base_spec):
    st = rt.create(base_spec)
    name = st["name"]
    with pytest.raises(InvalidState, match=f"cannot pause container {name}: it is created"):
        rt.pause(name)
    rt.start(name)
    rt.start(name)  # idempotent
    rt.pause(name)
    assert rt.state(name)["status"] == "paused"
    with pytest.raises(InvalidState, match="it is paused"):
        rt.pause(name)
    with pytest.raises(Conflict, match="stop it first"):
        rt.delete(name)
    rt.unpause(name)
    assert rt.state(name)["status"] == "running"
    rt.stop(name, timeout=0)
    assert rt.state(name)["status"] == "stopped"
    with pytest.raises(InvalidState, match=f"cannot pause container {name}: it is stopped"):
        rt.pause(name)
    with pytest.raises(InvalidState, match="cannot unpause"):
        rt.unpause(name)
    rt.stop(name)  # idempotent
    rt.delete(name)
    with pytest.raises(NotFound):
        rt.delete(name)


def test_stop_uses_stop_signal_then_kill(rt, base_spec):
    # sh as PID 1 ignores SIGTERM unless it traps it: the trap proves the signal arrived.
    base_spec["command"] = [
        "sh",
        "-c",
        "trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.1; done",
    ]
    st = rt.run(base_spec)
    wait_log(rt, st["id"], b"ready\n")
    rt.stop(st["id"], timeout=10)
    st = rt.state(st["id"])
    assert st["exit_code"] == 7
    assert any(b == b"got-term\n" for _, _, b in rt.logs(st["id"]))
    # Without a trap, the grace period ends in SIGKILL.
    base_spec["command"] = ["sleep", "1000"]
    st = rt.run(base_spec)
    rt.stop(st["id"], timeout=0)
    assert rt.state(st["id"])["exit_code"] == 137


def test_restart_and_start_again(rt, base_spec):
    st = rt.run(base_spec)
    first = st["pid"]
    st = rt.restart(st["id"], timeout=0)
    assert st["status"] == "running"
    assert st["pid"] != first
    rt.stop(st["id"], timeout=0)
    st = rt.start(st["id"])
    assert st["status"] == "running"


def test_ref_by_prefix_and_list(rt, base_spec):
    st = rt.create(base_spec)
    assert rt.state(st["id"][:12])["id"] == st["id"]
    assert rt.state(st["id"][:12].upper())["id"] == st["id"]  # hex in either case
    assert [s["id"] for s in rt.list()] == [st["id"]]
    with pytest.raises(NotFound):
        rt.state("doesnotexist")  # not hex: no id starts with it


def test_force_delete_running(rt, base_spec):
    st = rt.run(base_spec)
    pid = st["pid"]
    rt.delete(st["name"], force=True)
    assert (
        not os.path.exists(f"/proc/{pid}/cmdline") or Path(f"/proc/{pid}/cmdline").read_text() == ""
    )
    assert st["id"] not in rt.cgroups.list()


def test_init_reaps_and_forwards(rt, base_spec):
    base_spec["init"] = True
    base_spec["command"] = ["sh", "-c", "trap 'exit 9' TERM; echo ready; sleep 1000 & wait"]
    st = rt.run(base_spec)
    wait_log(rt, st["id"], b"ready\n")
    # PID 1 is the init; the program runs as its child and gets the forwarded SIGTERM.
    assert "sh" in _out(rt, st["id"], "cat", "/proc/2/cmdline")
    rt.stop(st["id"], timeout=10)
    assert rt.state(st["id"])["exit_code"] == 9
