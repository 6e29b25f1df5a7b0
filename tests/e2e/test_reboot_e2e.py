"""Issue 21 end to end: restart policies across a simulated reboot and a lost monitor, and
containers left without a row when the web server dies in the middle of creates.

The reboot is simulated as the issue describes: the agent killed, every container's monitor
(shim) and process killed, the run directory emptied, the agent started again. Expected
outcomes are Docker's documented ones (docs.docker.com, "Start containers automatically"):
`no` stays stopped; `always` starts; `unless-stopped` starts unless a user stopped it;
`on-failure` "doesn't restart the container if the daemon restarts", and after a failure
restarts while its retries last. The stack runs with 2 s reconcile and 1 s heartbeat
intervals, so "within two reconcile intervals" is a few seconds.
"""

import json
import os
import secrets
import signal
import threading
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack, _random, free_port
from tests.runtime.reboot_sim import kill_monitor, kill_monitor_and_process, reboot

pytestmark = [pytest.mark.e2e, pytest.mark.root]

LABEL = "io.berth.container"
RECONCILE_SECONDS = 2


@pytest.fixture(scope="module")
def quick(redis_url):
    """A Berth stack (web and agent) whose agent reconciles every 2 s."""
    if os.geteuid() != 0:
        pytest.skip("end-to-end tests run as root")
    base = Path(f"/tmp/berth-e2e-{_random(8)}")
    base.mkdir(mode=0o755)
    stack = Stack(base, redis_url)
    stack.env.update(BERTH_RECONCILE_SECONDS=str(RECONCILE_SECONDS), BERTH_HEARTBEAT_SECONDS="1")
    try:
        stack.setup()
        stack.start_worker()
        stack.start_web()
        yield stack
    finally:
        stack.teardown()


def _create(stack, name, policy, *, max_retries=0, command=("sleep", "1000"), network=None):
    body = {
        "team": stack.team,
        "host": stack.host,
        "start": True,
        "spec": {
            "image": "busybox",
            "name": name,
            "command": list(command),
            "restart": {"name": policy, "max_retries": max_retries},
            "network": network or {"mode": "none"},
        },
    }
    status, out = stack.api("POST", "containers/?wait=60", body)
    assert status == 200 and out["operation"]["state"] == "succeeded", out
    return out["container"]["id"]


def _row(stack, cid) -> dict:
    _, row = stack.api("GET", f"containers/{cid}/", expect=200)
    return row


def _events(stack, action) -> list[tuple]:
    return stack.sql(
        "SELECT object_id, object_repr, reason, summary, outcome FROM audit_auditevent "
        "WHERE action = ? ORDER BY seq",
        action,
    )


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def _served(url: str):
    try:
        return _get(url)
    except OSError:
        return ""


def test_reboot_restarts_by_policy_in_dependency_order_with_ports(quick):
    port = free_port()
    ids = {
        "no": _create(quick, "rbno", "no"),
        "always": _create(
            quick,
            "rbalways",
            "always",
            command=["httpd", "-f", "-p", "80", "-h", "/etc"],
            network={"ports": [{"container_port": 80, "host_port": port}]},
        ),
        "unless": _create(quick, "rbunless", "unless-stopped"),
        "unless_stopped": _create(quick, "rbunlessstop", "unless-stopped"),
        "on_failure": _create(quick, "rbfail", "on-failure", max_retries=2),
    }
    # Joins the web container's network namespace: it can only start after it.
    ids["joiner"] = _create(quick, "rbjoin", "always", network={"mode": "container:rbalways"})
    quick.api("POST", f"containers/{ids['unless_stopped']}/stop/?wait=60", {"timeout": 0})
    assert "localhost" in _get(f"http://127.0.0.1:{port}/hosts")
    before = {key: _row(quick, cid) for key, cid in ids.items()}
    audited = len(_events(quick, "container.auto_restart"))

    quick.kill_worker()
    reboot(quick.runtime())
    quick.start_worker()

    want = {
        "no": "stopped",
        "always": "running",
        "unless": "running",
        "unless_stopped": "stopped",
        "on_failure": "stopped",  # Docker: on-failure does not restart when the daemon starts
        "joiner": "running",
    }

    def settled():
        rows = {key: _row(quick, cid) for key, cid in ids.items()}
        got = {key: row["observed_state"] for key, row in rows.items()}
        return got == want and rows

    rows = quick.wait_until(settled, 60, "the start-up pass to apply the restart policies")
    for key in ("always", "unless", "joiner"):
        assert rows[key]["pid"] != before[key]["pid"]  # a new process: really restarted
    for key in ("no", "on_failure"):
        assert rows[key]["exit_code"] == 255  # the host went down under it
    # Each restart is in the audit log with its reason, in dependency order.
    events = _events(quick, "container.auto_restart")[audited:]
    names = [e[1] for e in events]
    assert sorted(names) == ["rbalways", "rbjoin", "rbunless"]
    assert names.index("rbalways") < names.index("rbjoin")
    for object_id, _, reason, summary, outcome in events:
        assert outcome == "allowed" and reason.startswith("host boot: restart policy")
        assert json.loads(summary)["trigger"] == "boot"
        assert int(object_id) in ids.values()
    # Network and port map restored: the page comes through the published port again, and the
    # joiner shares the web container's network stack.
    assert quick.wait_until(lambda: _served(f"http://127.0.0.1:{port}/hosts"), 10, "the port")
    status, out = quick.api(
        "POST",
        f"containers/{ids['joiner']}/exec/",
        {"command": ["wget", "-qO-", "http://127.0.0.1/hostname"]},
    )
    assert status == 200 and out["exit_code"] == 0, out

    # on-failure after real failures: its monitor and process die while the agent runs; the
    # next pass counts each retry, and gives up after max_retries (2).
    quick.api("POST", f"containers/{ids['on_failure']}/start/?wait=60", {})
    rt = quick.runtime()
    for attempt in (1, 2):
        old = _row(quick, ids["on_failure"])
        kill_monitor_and_process(rt, old["runtime_id"])

        def restarted(old=old):
            row = _row(quick, ids["on_failure"])
            return row["observed_state"] == "running" and row["pid"] != old["pid"]

        quick.wait_until(restarted, 3 * RECONCILE_SECONDS + 10, f"restart {attempt}")
        assert rt.state(old["runtime_id"])["restart_count"] == attempt
    kill_monitor_and_process(rt, _row(quick, ids["on_failure"])["runtime_id"])
    quick.wait_until(
        lambda: _row(quick, ids["on_failure"])["observed_state"] == "stopped",
        3 * RECONCILE_SECONDS + 10,
        "the spent on-failure container to stay stopped",
    )
    fails = [json.loads(e[3]) for e in _events(quick, "container.auto_restart") if e[1] == "rbfail"]
    assert [(f["trigger"], f["restart_count"]) for f in fails] == [
        ("monitor-lost", 1),
        ("monitor-lost", 2),
    ]
    lost = [e for e in _events(quick, "container.monitor_lost") if e[1] == "rbfail"]
    assert len(lost) >= 3


def test_always_with_a_lost_monitor_restarts_when_the_agent_returns(quick):
    cid = _create(quick, "lostalways", "always")
    row = _row(quick, cid)
    quick.kill_worker()
    rt = quick.runtime()
    kill_monitor(rt, row["runtime_id"])  # the program runs on, unwatched
    quick.start_worker()

    def restarted():
        now = _row(quick, cid)
        return now["observed_state"] == "running" and now["pid"] != row["pid"] and now

    quick.wait_until(restarted, 30, "the lost-monitor container to be restarted")
    reasons = [e[2] for e in _events(quick, "container.auto_restart") if e[1] == "lostalways"]
    assert reasons == ["monitor lost: restart policy always after exit code 137"]
    _, out = quick.api("GET", f"containers/{cid}/logs/", expect=200)
    assert "monitor (shim) was gone" in json.dumps(out)


def test_web_killed_during_creates_leaves_no_container_unseen(quick):
    rt = quick.runtime()
    # Two containers a cut-off create could leave behind, staged directly:
    # one whose row is lost but whose create operation is known (adopted) ...
    kept = _create(quick, "adoptme", "no")
    kept_runtime = _row(quick, kept)["runtime_id"]
    quick.sql_write("DELETE FROM containers_container WHERE id = ?", kept)
    # ... and one labelled for this host with neither row nor operation (removed).
    stray = rt.run(
        {
            "image": "busybox",
            "name": "strayorphan",
            "command": ["sleep", "1000"],
            "network": {"mode": "none"},
            "labels": {LABEL: f"{quick.host}/{10_000_000 + secrets.randbelow(1000)}"},
        }
    )

    # Sixteen creates, with the web server killed (SIGKILL) once about half have answered.
    answered = []
    half = threading.Event()

    def send(n):
        body = {
            "team": quick.team,
            "host": quick.host,
            "start": True,
            "spec": {
                "image": "busybox",
                "name": f"burst{n}",
                "command": ["sleep", "1000"],
                "network": {"mode": "none"},
            },
        }
        try:
            status, _ = quick.api("POST", "containers/", body, timeout=30)
            answered.append(status)
        except Exception:  # the server died under the request (reset, incomplete answer)
            answered.append(None)
        if len(answered) >= 8:
            half.set()

    threads = [threading.Thread(target=send, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    half.wait(60)
    os.kill(quick.web.pid, signal.SIGKILL)
    quick.web.wait(10)
    quick.web = None
    for thread in threads:
        thread.join(60)
    quick.start_web()

    def converged():
        rows = {
            str(pk): state
            for pk, state in quick.sql(
                "SELECT id, observed_state FROM containers_container WHERE host_id = "
                "(SELECT id FROM hosts_host WHERE name = ?)",
                quick.host,
            )
        }
        labelled = [
            s["spec"]["labels"][LABEL].partition("/")[2]
            for s in rt.list()
            if (s["spec"].get("labels") or {}).get(LABEL, "").startswith(f"{quick.host}/")
        ]
        return all(pk in rows for pk in labelled) and stray["id"] not in {
            s["id"] for s in rt.list()
        }

    quick.wait_until(converged, 2 * RECONCILE_SECONDS + 10, "every container to have its row")
    adopted = _row(quick, kept)
    assert adopted["runtime_id"] == kept_runtime and adopted["observed_state"] == "running"
    assert [e[0] for e in _events(quick, "container.adopt")] == [str(kept)]
    removed = _events(quick, "container.orphan_remove")
    assert [json.loads(e[3])["runtime_id"] for e in removed] == [stray["id"]]
    assert any(s == 202 for s in answered)


def test_maintenance_switch_keeps_containers_stopped_until_lifted(quick):
    cid = _create(quick, "maintalways", "always")
    quick.kill_worker()
    reboot(quick.runtime())
    quick.env["BERTH_AGENT_RESTART_POLICIES"] = "0"
    try:
        quick.start_worker()
        quick.wait_until(
            lambda: _row(quick, cid)["observed_state"] == "stopped",
            30,
            "the reaped container's row under maintenance",
        )
        assert [e[1] for e in _events(quick, "container.monitor_lost")].count("maintalways") == 1
        assert "maintalways" not in [e[1] for e in _events(quick, "container.auto_restart")]
        quick.kill_worker()
    finally:
        del quick.env["BERTH_AGENT_RESTART_POLICIES"]
    quick.start_worker()  # maintenance over: this start-up pass applies the boot rules
    quick.wait_until(
        lambda: _row(quick, cid)["observed_state"] == "running",
        30,
        "the always container to start once maintenance is over",
    )
    reasons = [e[2] for e in _events(quick, "container.auto_restart") if e[1] == "maintalways"]
    assert reasons == ["host boot: restart policy always"]
