"""Issue 22, agent side: what only the host can judge is checked before anything is created,
and a refused create marks the row failed (observed `error` with the reason), never `pending`.

The spec reaches the agent as the web stored it; one the agent's own parse refuses (here a row
written past the web's checks) must leave no runtime object, and the reconciler must not keep
re-creating it.
"""

import json

import pytest
from agent import reconcile

from containers.models import Container
from operations.models import Operation
from tests.e2e.test_agent_logic import _op, _run, world

__all__ = ["world"]  # the fixture, found by pytest here

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("stop_signal", "SIGBOGUS", "invalid signal 'SIGBOGUS'"),
        ("network", {"mac_address": "ff:ff:ff:ff:ff:ff"}, "multicast"),
        ("network", {"extra_hosts": ["db=1.2.3.4"]}, "invalid extra host"),
    ],
)
def test_a_create_the_agent_refuses_marks_the_row_failed(world, field, value, words):
    container = world["container"]
    Container.objects.filter(pk=container.pk).update(spec={**container.spec, field: value})
    out = _run(world, _op(world, "container.create", start=True))
    assert out["state"] == "failed" and words in out["error"], out
    row = Container.objects.get(pk=container.pk)
    assert row.observed_state == "error" and words in row.error
    assert row.runtime_id == "" and world["rt"].containers == {}
    # The reconciler leaves it alone: no ghost repair, no new operation, nothing created.
    before = Operation.objects.count()
    reconcile.reconcile_host(world["host"].name, rt=world["rt"])
    assert Operation.objects.count() == before and world["rt"].creates == 0
    assert Container.objects.get(pk=container.pk).observed_state == "error"


# -- through a served Berth with its real agent ----------------------------------------------


def _raw(web, method, path, data: bytes, content_type="application/json"):
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{web.web_port}/api/v1/{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {web.token}", "Content-Type": content_type},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def _counts(web) -> tuple:
    return (
        web.sql("SELECT COUNT(*) FROM containers_container")[0][0],
        web.sql("SELECT COUNT(*) FROM operations_operation")[0][0],
    )


@pytest.mark.e2e
@pytest.mark.root
def test_served_bodies_ids_and_host_facts_are_refused_up_front(web):
    # The agent has reported its CPUs and memory, and its images are rows.
    web.wait_until(lambda: "cpus" in web.host_row()["info"], 30, "the agent's heartbeat")
    web.wait_until(lambda: web.sql("SELECT COUNT(*) FROM images_image")[0][0] > 0, 60, "image rows")
    before = _counts(web)
    big = b'{"spec": "' + b"x" * (8 * 1024 * 1024 + 1) + b'"}'
    assert _raw(web, "POST", "containers/", big)[0] == 413
    status, answer = _raw(web, "POST", "containers/", b"[" * 5000 + b"]" * 5000)
    assert status == 400 and "nested too deeply" in answer["error"]["message"]
    for raw in ("%C2%B9", "%D9%A2"):
        assert web.api("GET", f"containers/{raw}/")[0] == 404
    base = {"team": web.team, "host": web.host, "start": True}
    cases = [
        ({"image": "nosuch:1"}, "image"),
        ({"image": "busybox", "limits": {"cpuset_cpus": "999"}}, "limits.cpuset_cpus"),
        ({"image": "busybox", "limits": {"memory": "1000000000g"}}, "limits.memory"),
        ({"image": "busybox", "stop_signal": "SIGBOGUS"}, "stop_signal"),
        ({"image": "busybox", "network": {"networks": ["nowhere"]}}, "network.networks"),
    ]
    for spec, field in cases:
        status, answer = web.api("POST", "containers/?wait=30", {**base, "spec": spec})
        assert status == (404 if field == "image" else 400), answer
        assert answer["error"]["details"]["field"] == field, answer
        assert answer["error"]["message"].startswith(field + ": ")
    assert _counts(web) == before


@pytest.mark.e2e
@pytest.mark.root
def test_a_user_the_image_lacks_ends_failed_with_the_reason(web):
    body = {
        "team": web.team,
        "host": web.host,
        "start": True,
        "spec": {"image": "busybox", "name": "nouser", "user": "nosuchuser", "command": ["true"]},
    }
    status, out = web.api("POST", "containers/?wait=60", body)
    assert status == 200, out
    cid = out["container"]["id"]
    try:
        assert out["operation"]["state"] == "failed", out
        assert "unable to find user nosuchuser" in out["operation"]["error"], out
        status, row = web.api("GET", f"containers/{cid}/")
        assert row["observed_state"] == "error", row
        assert "unable to find user nosuchuser" in row["error"], row
        # Refused before anything was made: no runtime object, no runtime id on the row.
        assert not [s for s in web.runtime().list() if s.get("name") == "nouser"]
        assert web.sql("SELECT runtime_id FROM containers_container WHERE id = ?", cid) == [("",)]
    finally:
        web.api("DELETE", f"containers/{cid}/?wait=60&force=1")
