"""A host agent killed by SIGKILL in the middle of a start loses nothing and duplicates nothing."""

import time

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.root]

LABEL = "io.berth.container"
ATTEMPTS = 4  # each lands the kill at a slightly different point of the start


def op_state(stack, op_id):
    rows = stack.sql("SELECT state FROM operations_operation WHERE id = ?", op_id)
    return rows[0][0] if rows else None


def kill_when_running(stack, op_id, timeout=30.0) -> str:
    """SIGKILL the agent as soon as it has claimed the operation; returns the state seen then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = op_state(stack, op_id)
        if state != "pending":
            stack.kill_worker()
            return state
        time.sleep(0.001)
    pytest.fail(f"operation {op_id} was never claimed")


def test_agent_killed_mid_start_converges_on_one_running_container(web):
    caught_mid_task = False
    for attempt in range(ATTEMPTS):
        # Queue the work while no agent runs, so the kill lands right after the claim.
        web.kill_worker()
        body = {
            "team": web.team,
            "host": web.host,
            "start": True,
            "spec": {
                "image": "busybox",
                "name": f"crash{attempt}",
                "command": ["sleep", "1000"],
                "network": {"mode": "none"},
            },
        }
        status, out = web.api("POST", "containers/", body)
        assert status == 202, out
        op_id, cid = out["operation"]["id"], out["container"]["id"]
        web.start_worker()
        seen = kill_when_running(web, op_id)
        caught_mid_task |= seen == "running"

        web.start_worker()  # its start-up pass re-runs operations left 'running' on this host
        web.wait_until(
            lambda op_id=op_id: op_state(web, op_id) in ("succeeded", "failed"),
            60,
            "the recovered operation",
        )
        assert op_state(web, op_id) == "succeeded", web.sql(
            "SELECT error FROM operations_operation WHERE id = ?", op_id
        )

        wanted = f"{web.host}/{cid}"
        copies = [
            s for s in web.runtime().list() if (s["spec"].get("labels") or {}).get(LABEL) == wanted
        ]
        assert len(copies) == 1, copies
        assert copies[0]["status"] == "running", (
            copies,
            web.sql("SELECT result FROM operations_operation WHERE id = ?", op_id),
        )
        _, row = web.api("GET", f"containers/{cid}/", expect=200)
        assert row["observed_state"] == "running" and row["runtime_id"] == copies[0]["id"]
        web.api("DELETE", f"containers/{cid}/?wait=60&force=true", expect=200)
    assert caught_mid_task, (
        f"in {ATTEMPTS} attempts the kill never landed while the start was running"
    )
