"""Restart policies across a reboot and a lost monitor (issue 21), checked against Docker's rules.

Docker's documentation (docs.docker.com, "Start containers automatically"):
- no: never restarted.
- on-failure[:max]: restarted after a non-zero exit while retries last; "it doesn't restart
  the container if the daemon restarts".
- always: restarted; "if it's manually stopped, it's restarted only when Docker daemon
  restarts or the container itself is manually restarted".
- unless-stopped: like always, "except that when the container is stopped (manually or
  otherwise), it isn't restarted even after Docker daemon restarts".

A reboot is simulated as the issue describes: every shim and container process killed, the
run directory emptied; then `boot.recover(startup=True)` runs as the agent's first pass does.
"""

import os
import time
import urllib.request

import pytest

from runtime.container import boot, respawn, restart_due
from runtime.container.fsutil import read_json
from runtime.errors import KernelError
from tests.runtime.net_runtime import free_port, net_runtime, nft_ports, poll
from tests.runtime.reboot_sim import kill_monitor, kill_monitor_and_process, reboot

pytestmark = pytest.mark.root


# -- the rules themselves (pure functions), one row per case of Docker's table ----------------


def _spec(name, max_retries=0):
    return {"restart": {"name": name, "max_retries": max_retries}}


@pytest.mark.parametrize(
    ("policy", "kw", "expected"),
    [
        ("no", dict(was_running=True, code=255, count=0, user_stopped=False), False),
        ("always", dict(was_running=True, code=255, count=0, user_stopped=False), True),
        ("always", dict(was_running=False, code=137, count=0, user_stopped=True), True),
        ("unless-stopped", dict(was_running=True, code=255, count=0, user_stopped=False), True),
        ("unless-stopped", dict(was_running=False, code=137, count=0, user_stopped=True), False),
        ("on-failure", dict(was_running=True, code=255, count=0, user_stopped=False), False),
        ("on-failure", dict(was_running=False, code=3, count=1, user_stopped=False), True),
        ("on-failure", dict(was_running=False, code=0, count=0, user_stopped=False), False),
        ("on-failure", dict(was_running=False, code=3, count=2, user_stopped=False), False),
    ],
)
def test_boot_rules_follow_docker(policy, kw, expected):
    limit = 2 if policy == "on-failure" else 0
    assert respawn.at_boot(_spec(policy, limit), **kw) is expected


@pytest.mark.parametrize(
    ("policy", "kw", "expected"),
    [
        ("no", dict(code=137, count=0, user_stopped=False), False),
        ("always", dict(code=137, count=5, user_stopped=False), True),
        ("always", dict(code=137, count=0, user_stopped=True), False),
        ("unless-stopped", dict(code=0, count=0, user_stopped=False), True),
        ("on-failure", dict(code=137, count=1, user_stopped=False), True),
        ("on-failure", dict(code=137, count=2, user_stopped=False), False),
        ("on-failure", dict(code=0, count=0, user_stopped=False), False),
    ],
)
def test_lost_monitor_rules_follow_the_shims(policy, kw, expected):
    assert respawn.after_lost_monitor(_spec(policy, 2), **kw) is expected


# -- real containers --------------------------------------------------------------------------


@pytest.fixture
def nrt():
    """A Runtime with a bridge network of its own (removed after the test)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    with net_runtime() as rt:
        yield rt


def _run(rt, name, policy, command=("sleep", "1000"), max_retries=0, **extra):
    spec = {
        "image": "busybox",
        "name": name,
        "command": list(command),
        "restart": {"name": policy, "max_retries": max_retries},
        "network": {"mode": "none"},
    }
    spec.update(extra)
    return rt.run(spec)["id"]


def _gone_or_reaped(pid):
    """The old process is gone; a zombie only while its parent (the host's init) reaps it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return True
    fields = stat[stat.rindex(")") + 2 :].split()
    print("old process", pid, "state", fields[0], "parent", fields[1])
    return poll(lambda: not os.path.exists(f"/proc/{pid}"), 5)


def _get(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def test_reboot_applies_each_policy_as_docker_does(nrt):
    port = free_port()
    ids = {
        "no": _run(nrt, "bno", "no"),
        "always": _run(
            nrt,
            "balways",
            "always",
            command=["httpd", "-f", "-p", "80", "-h", "/etc"],
            network={"ports": [{"container_port": 80, "host_port": port}]},
        ),
        "unless": _run(nrt, "bunless", "unless-stopped"),
        "unless_stopped": _run(nrt, "bunlessstop", "unless-stopped"),
        "always_stopped": _run(nrt, "balwaysstop", "always"),
        "onfail_running": _run(nrt, "bonfailrun", "on-failure", max_retries=3),
        "onfail_spent": _run(
            nrt, "bonfailspent", "on-failure", command=["sh", "-c", "exit 3"], max_retries=1
        ),
    }
    # One joins another's network namespace: it must start after the one it joins.
    ids["joiner"] = _run(nrt, "bjoiner", "always", network={"mode": f"container:{ids['always']}"})
    nrt.stop(ids["unless_stopped"], timeout=0)  # a user's stop
    nrt.stop(ids["always_stopped"], timeout=0)
    assert poll(lambda: nrt.state(ids["onfail_spent"])["restart_count"] == 1, 15)
    assert poll(lambda: nrt.state(ids["onfail_spent"])["status"] == "stopped", 15)
    assert "localhost" in _get(f"http://127.0.0.1:{port}/hosts")

    reboot(nrt)
    assert boot.is_boot(nrt.config)
    result = boot.recover(nrt, startup=True)
    assert result["boot"] and not result["maintenance"]

    started = {item["id"]: item for item in result["restarts"]}
    status = {key: nrt.state(cid)["status"] for key, cid in ids.items()}
    assert status == {
        "no": "stopped",
        "always": "running",
        "unless": "running",
        "unless_stopped": "stopped",
        "always_stopped": "running",  # Docker: restarted when the daemon starts
        "onfail_running": "stopped",  # Docker: on-failure never restarts at daemon start
        "onfail_spent": "stopped",  # its one retry was spent before the boot
        "joiner": "running",
    }
    assert set(started) == {ids[k] for k in ("always", "unless", "always_stopped", "joiner")}
    assert all(item["started"] and item["error"] == "" for item in started.values())
    assert started[ids["always"]]["reason"] == "host boot: restart policy always"
    assert "even after a user's stop" in started[ids["always_stopped"]]["reason"]
    order = [item["id"] for item in result["restarts"]]
    assert order.index(ids["always"]) < order.index(ids["joiner"])
    # The ones that did not come back say why they stopped: the host went down under them.
    assert nrt.state(ids["no"])["exit_code"] == 255
    assert nrt.state(ids["onfail_running"])["exit_code"] == 255
    assert nrt.state(ids["onfail_spent"])["exit_code"] == 3
    assert nrt.state(ids["onfail_spent"])["restart_count"] == 1
    # Network and port map are back: the page is served through the published port again, and
    # the joiner sees the same network stack.
    assert str(port) in nft_ports(nrt.config.prefix)
    assert "localhost" in _get(f"http://127.0.0.1:{port}/hosts")
    code, out = nrt.exec(ids["joiner"], ["wget", "-qO-", "http://127.0.0.1/hostname"])
    assert code == 0 and out.strip()
    # A second pass changes nothing: the boot is recorded, nothing lost its monitor.
    again = boot.recover(nrt, startup=True)
    assert not again["boot"] and again["restarts"] == [] and again["reaped"] == []


def test_maintenance_file_keeps_everything_stopped_at_boot(nrt):
    cid = _run(nrt, "bmaint", "always")
    reboot(nrt)
    boot.maintenance_file(nrt.config).touch()
    try:
        result = boot.recover(nrt, startup=True)
    finally:
        boot.maintenance_file(nrt.config).unlink()
    assert result["maintenance"] and result["restarts"] == []
    assert nrt.state(cid)["status"] == "stopped"
    assert [r["id"] for r in result["reaped"]] == [cid]
    # Maintenance over: the next start-up pass still treats this boot as one.
    assert boot.is_boot(nrt.config)
    (item,) = boot.recover(nrt, startup=True)["restarts"]
    assert item["id"] == cid and item["started"]


def test_a_monitor_lost_during_maintenance_is_restarted_once_it_is_over(nrt):
    cid = _run(nrt, "bmaintlost", "unless-stopped")
    kill_monitor(nrt, cid)
    boot.maintenance_file(nrt.config).touch()
    try:
        result = boot.recover(nrt)
    finally:
        boot.maintenance_file(nrt.config).unlink()
    assert [r["id"] for r in result["reaped"]] == [cid] and result["restarts"] == []
    assert nrt.state(cid)["status"] == "stopped"
    # Maintenance over: the restart its policy owes is made by the next pass.
    (item,) = boot.recover(nrt)["restarts"]
    assert item["id"] == cid and item["started"]
    assert nrt.state(cid)["status"] == "running"


def test_lost_monitor_always_is_reaped_logged_and_restarted(nrt):
    cid = _run(nrt, "blostalways", "always")
    paths = nrt.store.paths(cid)
    shim = kill_monitor(nrt, cid)  # the monitor dies, the program runs on
    assert nrt.state(cid)["status"] == "running"  # unmonitored

    result = boot.recover(nrt)
    assert [r["id"] for r in result["reaped"]] == [cid]
    assert result["reaped"][0]["killed"] and result["reaped"][0]["exit_code"] == 137
    (item,) = result["restarts"]
    assert item["started"] and item["trigger"] == "monitor-lost"
    assert item["reason"] == "monitor lost: restart policy always after exit code 137"
    state = nrt.state(cid)
    assert state["status"] == "running" and state["pid"] != shim["pid"]
    assert state["restart_count"] == 1
    assert _gone_or_reaped(shim["pid"])
    notes = [b for _, _, b in nrt.logs(cid)]
    assert any(b"monitor (shim) was gone" in b for b in notes)
    # Monitored again: a crash is now the new shim's to restart.
    new_shim = read_json(paths.shim_file)
    assert new_shim["shim"] != shim["shim"]
    assert boot.recover(nrt)["reaped"] == []


def test_lost_monitor_on_failure_counts_its_retries(nrt):
    cid = _run(nrt, "blostfail", "on-failure", max_retries=2)
    counts = []
    for _ in range(3):
        kill_monitor_and_process(nrt, cid)  # monitor and program both gone
        result = boot.recover(nrt)
        assert [r["id"] for r in result["reaped"]] == [cid]
        assert result["reaped"][0]["exit_code"] == 255  # nobody saw how it ended
        counts.append([i["restart_count"] for i in result["restarts"]])
    assert counts == [[1], [2], []]  # the third loss finds its two retries spent
    state = nrt.state(cid)
    assert state["status"] == "stopped" and state["exit_code"] == 255
    assert state["restart_count"] == 2


def _refuse_starts(rt, monkeypatch):
    """Make the runtime's starts fail (a host short of memory, say) until the undo is called."""
    real = rt.start

    def refused(*args, **kwargs):
        raise KernelError("cannot allocate memory (injected)")

    monkeypatch.setattr(rt, "start", refused)
    return lambda: monkeypatch.setattr(rt, "start", real)


def test_a_failed_restart_after_a_lost_monitor_is_tried_again_until_it_runs(nrt, monkeypatch):
    # Tried once, an unless-stopped container whose first restart failed stayed stopped for
    # good while its owner wanted it running (seen in the faults e2e test).
    cid = _run(nrt, "blostretry", "unless-stopped")
    kill_monitor(nrt, cid)
    undo = _refuse_starts(nrt, monkeypatch)
    (item,) = boot.recover(nrt)["restarts"]
    assert not item["started"] and item["error"].endswith("(tried again in 1 s)")
    undo()
    assert boot.recover(nrt)["restarts"] == []  # backing off: not before a second has passed
    assert nrt.state(cid)["status"] == "stopped"
    time.sleep(restart_due.FIRST_BACKOFF_SECONDS)
    (item,) = boot.recover(nrt)["restarts"]
    assert item["started"] and item["reason"].endswith("(try 2: the last 1 failed)")
    assert nrt.state(cid)["status"] == "running"
    assert restart_due.owed(nrt.config) == {}  # paid: the next passes owe it nothing
    again = boot.recover(nrt)
    assert again["reaped"] == [] and again["restarts"] == []


def test_a_user_stop_cancels_a_restart_still_owed(nrt, monkeypatch):
    cid = _run(nrt, "blostcancel", "always")
    kill_monitor(nrt, cid)
    undo = _refuse_starts(nrt, monkeypatch)
    assert not boot.recover(nrt)["restarts"][0]["started"]
    undo()
    nrt.stop(cid)  # stopped already: what it stops is the restart that was coming
    restart_due.failed(nrt.config, cid, 0)  # and were its back-off over...
    time.sleep(restart_due.FIRST_BACKOFF_SECONDS * 2)
    assert boot.recover(nrt)["restarts"] == []  # ...the user's stop still wins
    assert nrt.state(cid)["status"] == "stopped"
    nrt.delete(cid)
    assert restart_due.owed(nrt.config) == {}


def test_a_user_stop_between_the_decision_and_the_start_wins(nrt):
    cid = _run(nrt, "blostrace", "unless-stopped")
    kill_monitor(nrt, cid)
    reaped = boot.reap_all(nrt)
    (item,) = boot.due(nrt, reaped, boot=False)  # decided: the policy says start it
    nrt.stop(cid)  # a user's stop lands before the start does
    (item,) = boot.start_all(nrt, [item])
    assert (item["started"], item["error"]) == (False, "a user stopped it meanwhile")
    assert nrt.state(cid)["status"] == "stopped"
    assert restart_due.owed(nrt.config) == {}
    assert boot.recover(nrt)["restarts"] == []  # and no later pass starts it either


def test_lost_monitor_no_policy_and_user_stop_are_not_restarted(nrt):
    plain = _run(nrt, "blostno", "no")
    stopped = _run(nrt, "blostkill", "always")
    kill_monitor(nrt, plain)
    nrt.kill(stopped, "KILL")  # a user's kill: the stop flag wins, as in the shim
    assert poll(lambda: nrt.state(stopped)["status"] == "stopped", 10)
    result = boot.recover(nrt)
    assert [r["id"] for r in result["reaped"]] == [plain]
    assert result["restarts"] == []
    assert nrt.state(plain)["status"] == "stopped"
    assert nrt.state(plain)["exit_code"] == 137
    assert nrt.state(stopped)["status"] == "stopped"


def test_unless_stopped_killed_by_a_user_stays_down_after_a_boot(nrt):
    cid = _run(nrt, "bkilled", "unless-stopped")
    nrt.kill(cid, "KILL")  # docker kill counts as a manual stop
    reboot(nrt)
    result = boot.recover(nrt, startup=True)
    assert result["boot"] and result["restarts"] == []
    assert nrt.state(cid)["status"] == "stopped"


def test_rm_container_whose_monitor_died_is_removed(nrt):
    cid = nrt.run(
        {"image": "busybox", "command": ["sleep", "1000"], "network": {"mode": "none"}},
        auto_remove=True,
    )["id"]
    kill_monitor(nrt, cid)
    result = boot.recover(nrt)
    assert result["reaped"][0]["removed"] and result["restarts"] == []
    assert cid not in nrt.store.ids()
