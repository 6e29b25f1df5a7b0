"""Read-style calls refused on the host keep a status the user can act on (issue 22)."""

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.root]


def test_exec_into_a_stopped_container_is_409_not_503(web):
    body = {
        "team": web.team,
        "host": web.host,
        "start": False,
        "spec": {"image": "busybox", "name": "idle-exec", "network": {"mode": "none"}},
    }
    status, out = web.api("POST", "containers/?wait=60", body)
    assert status == 200 and out["operation"]["state"] == "succeeded", out
    cid = out["container"]["id"]
    try:
        status, answer = web.api("POST", f"containers/{cid}/exec/", {"command": ["true"]})
        assert status == 409, answer
        assert (
            "created" in answer["error"]["message"] or "not running" in answer["error"]["message"]
        ), answer
        # An expected refusal is not logged on the host as an error with a traceback.
        log = (web.logs / "agent.log").read_text()
        assert "Traceback" not in log.split("idle-exec")[-1]
    finally:
        web.api("DELETE", f"containers/{cid}/?wait=60&force=1")
