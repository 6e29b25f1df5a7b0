"""Redis goes away and comes back: the API refuses cleanly, the agent reconnects by itself."""

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.root]


def _body(stack, name):
    return {
        "team": stack.team,
        "host": stack.host,
        "start": True,
        "spec": {
            "image": "busybox",
            "name": name,
            "command": ["sleep", "1000"],
            "network": {"mode": "none"},
        },
    }


def test_agent_reconnects_after_redis_restart(stack_with_own_redis):
    stack = stack_with_own_redis
    stack.redis.stop()

    status, body = stack.api(
        "POST", "containers/?wait=5", _body(stack, "during-outage"), timeout=60
    )
    assert status == 503, body
    assert stack.sql("SELECT count(*) FROM containers_container WHERE name = 'during-outage'") == [
        (0,)
    ]
    assert stack.worker.poll() is None, "the agent must survive a broker outage"

    stack.redis.start()  # a fresh, empty Redis on the same port
    status, body = stack.api(
        "POST", "containers/?wait=60", _body(stack, "after-outage"), timeout=90
    )
    assert status == 200 and body["operation"]["state"] == "succeeded", body
    _, row = stack.api("GET", f"containers/{body['container']['id']}/", expect=200)
    assert row["observed_state"] == "running"
