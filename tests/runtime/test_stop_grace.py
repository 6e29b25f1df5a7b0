"""Stops that do not wait (issue 20): the shim, C or Python, kills after the grace period."""

import os
import time

import pytest

from runtime.container import launch, shimbin
from runtime.spec import ContainerSpec

pytestmark = pytest.mark.root


def _ended(rt, cid) -> dict:
    """The state once the shim has reaped the init and recorded its exit (at most 30 s)."""
    deadline = time.monotonic() + 30
    while (state := rt.state(cid))["status"] != "stopped" and time.monotonic() < deadline:
        launch.wait_gone(state["pid"] or state.get("shim_pid"), 0.1)
    return state


@pytest.fixture(params=["c", "python"])
def shim_kind(request, monkeypatch):
    """Each test once with the C shim and once with the Python fallback."""
    shimbin._cache.clear()
    if request.param == "python":
        monkeypatch.setenv("BERTH_PYTHON_SHIM", "1")
    yield request.param
    shimbin._cache.clear()


def test_signal_stop_returns_at_once_and_the_shim_kills_at_the_deadline(rt, base_spec, shim_kind):
    # busybox `sleep` as PID 1 ignores SIGTERM: only the kill at the deadline ends it.
    state = rt.run(ContainerSpec.from_dict(dict(base_spec, name=f"grace-{shim_kind}")))
    pid = state["pid"]
    after = rt.signal_stop(state["id"], timeout=1)
    assert after["status"] == "running" and after["pid"] == pid  # returned before the end
    stopped = _ended(rt, state["id"])
    assert stopped["status"] == "stopped" and stopped["exit_code"] == 137
    # Completing the stop afterwards only releases what is left; it does not wait.
    assert rt.stop(state["id"])["status"] == "stopped"


def test_a_container_that_honours_its_signal_exits_with_its_own_code(rt, base_spec, shim_kind):
    spec = dict(
        base_spec,
        name=f"polite-{shim_kind}",
        command=["sh", "-c", "trap 'exit 3' TERM; echo trapped; while :; do sleep 0.05; done"],
    )
    state = rt.run(ContainerSpec.from_dict(spec))
    # PID 1 ignores SIGTERM until its trap is set: signal only once it says so.
    deadline = time.monotonic() + 30
    while not any(b"trapped" in entry[2] for entry in rt.logs(state["id"], follow=False)):
        assert time.monotonic() < deadline, "the container never set its trap"
        time.sleep(0.02)
    rt.signal_stop(state["id"], timeout=30)
    assert _ended(rt, state["id"])["exit_code"] == 3
    # A restart after it: the stop flag's deadline is cleared, the new run is not killed.
    restarted = rt.restart(state["id"], timeout=0)
    assert restarted["status"] == "running"


def test_a_start_during_the_grace_runs_it_again_after_the_stop(rt, base_spec):
    state = rt.run(ContainerSpec.from_dict(dict(base_spec, name="grace-then-start")))
    old = state["pid"]
    rt.signal_stop(state["id"], timeout=1)  # sleep as PID 1 ignores SIGTERM: killed at 1 s
    again = rt.start(state["id"])
    # Not the "already running" of the process being stopped: a new run, after the old ended.
    assert again["status"] == "running" and again["pid"] not in (None, old)
    assert not os.path.exists(f"/proc/{old}")
    assert rt.state(state["id"])["status"] == "running"  # the stop's kill was for the old run


def test_a_start_during_the_grace_of_a_container_whose_shim_died_reaps_it_first(rt, base_spec):
    from tests.runtime.reboot_sim import kill_monitor

    state = rt.run(ContainerSpec.from_dict(dict(base_spec, name="grace-no-shim")))
    rt.signal_stop(state["id"], timeout=600)
    kill_monitor(rt, state["id"])  # nobody is left to kill it at the deadline
    again = rt.start(state["id"])
    assert again["status"] == "running" and again["pid"] != state["pid"]
    assert rt._observe(state["id"])[1]["monitored"]  # a new shim watches the new run


def test_a_start_waiting_out_the_grace_reaps_when_the_shim_dies_meanwhile(rt, base_spec):
    # The faults e2e test's order: the start began to wait for the stop's kill at its deadline,
    # then the shim that would have killed died. The start must not take the old run, still
    # alive, for its own: a stop's kill would end it later with the start reported done.
    import threading

    from tests.runtime.reboot_sim import kill_monitor

    state = rt.run(ContainerSpec.from_dict(dict(base_spec, name="grace-shim-dies")))
    cid, old = state["id"], state["pid"]
    rt.signal_stop(cid, timeout=600)
    started = {}
    starter = threading.Thread(target=lambda: started.update(rt.start(cid)), daemon=True)
    starter.start()
    starter.join(1.0)
    assert starter.is_alive()  # waiting for the stop's deadline, as it should
    kill_monitor(rt, cid)
    starter.join(60)
    assert not starter.is_alive()
    assert started["status"] == "running" and started["pid"] not in (None, old)
    assert not _runs(old)  # killed (a zombie until whoever inherited it reaps it)
    assert rt._observe(cid)[1]["monitored"]


def _runs(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_stop_or_kill_for_an_ended_run_leaves_the_run_started_since(rt, base_spec):
    # The agent's Waiter finishes a parked stop after the grace. When the shim had died, a
    # start asked meanwhile reaps the old run and begins a new one: the Waiter's kill, stop or
    # restart (for the old run's pid) must leave that new run alone (tests/e2e/test_faults_e2e).
    from tests.runtime.reboot_sim import kill_monitor

    state = rt.run(ContainerSpec.from_dict(dict(base_spec, name="grace-stale-waiter")))
    cid, old = state["id"], state["pid"]
    rt.signal_stop(cid, timeout=600)
    kill_monitor(rt, cid)
    new = rt.start(cid)["pid"]
    assert new != old
    rt.kill(cid, "KILL", run_pid=old)
    assert rt.stop(cid, run_pid=old)["pid"] == new
    assert rt.restart(cid, timeout=0, run_pid=old)["pid"] == new
    after = rt.state(cid)
    assert after["status"] == "running" and after["pid"] == new
    assert not rt.store.read_state(cid).get("user_stopped")  # a policy still applies to it
    # The run it names is still stopped as asked.
    assert rt.stop(cid, timeout=0, run_pid=new)["status"] == "stopped"
