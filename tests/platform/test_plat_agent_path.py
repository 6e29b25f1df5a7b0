"""A remove answered as a row update, the host's deletion after it (issue 19), and the
agent's statements for a create (issue 9).

The agent's side runs against a small stand-in for the runtime (the runtime's own cost is in
bench/); the real runtime path is in tests/e2e/test_lifecycle_e2e.py.
"""

import itertools
import uuid

import pytest
from agent import containers_ops, executor, removed_holders
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Membership, Team, User
from audit.models import AuditEvent
from containers.models import Container
from hosts.models import Host
from operations import dispatch
from operations.models import Operation
from rbac.models import Role, RoleBinding
from runtime.errors import Conflict, InvalidState, NotFound
from tests.platform.factories import make_container

pytestmark = pytest.mark.django_db


class MiniRuntime:
    """create/run/state/start/delete kept in a dict, like the runtime answers them."""

    def __init__(self):
        self.containers = {}
        self._ids = itertools.count(1)

    def _get(self, ref):
        for state in self.containers.values():
            if ref in (state["id"], state["name"]):
                return state
        raise NotFound(f"no such container: {ref}")

    def create(self, spec):
        if any(s["name"] == spec.name for s in self.containers.values()):
            raise Conflict(f'the container name "/{spec.name}" is already in use')
        cid = f"{next(self._ids):064x}"
        self.containers[cid] = {
            "id": cid,
            "name": spec.name,
            "status": "created",
            "pid": None,
            "exit_code": None,
            "labels": dict(spec.labels),
        }
        return dict(self.containers[cid])

    def run(self, spec):
        state = self.create(spec)
        self._get(state["id"]).update(status="running", pid=4242)
        return self.state(state["id"])

    def state(self, ref):
        return dict(self._get(ref))

    def delete(self, ref, force=False):
        state = self._get(ref)
        if state["status"] == "running" and not force:
            raise InvalidState("running")
        del self.containers[state["id"]]


@pytest.fixture
def world(db):
    host = Host.objects.create(name=f"ap{uuid.uuid4().hex[:8]}")
    team = Team.objects.create(name="ap-team")
    user = User.objects.create_user("ap-admin", password="x")
    Membership.objects.create(team=team, user=user)
    RoleBinding.objects.create(user=user, role=Role.objects.get(name="admin"))
    container = Container.objects.create(
        team=team,
        host=host,
        name="ap-web",
        image="busybox",
        spec={"image": "busybox", "command": ["sleep", "1000"]},
        created_by=user,
    )
    return host, team, container, MiniRuntime()


def _op(world, kind, **params):
    host, team, container, _ = world
    return Operation.objects.create(
        kind=kind,
        target_type="container",
        target_id=str(container.id),
        host=host,
        team=team,
        params=params,
    )


def _execute(world, op):
    host, _, _, rt = world
    with CaptureQueriesContext(connection) as ctx:
        out = executor.execute(op.id, host_name=host.name, rt=rt)
    return out, len(ctx.captured_queries)


# --- the web: a remove of a container that runs nothing is one row update -------------------


def test_removing_a_stopped_container_is_answered_at_once(
    api, teams, host, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    # The broker seam only (a real send is in tests/e2e/test_lifecycle_e2e.py): what is sent.
    monkeypatch.setattr(
        dispatch, "send_signed", lambda task, to, args, **kw: sent.append((task, to, args))
    )
    row = make_container(teams["alpha"], host, "tp-rm-a", observed_state="stopped")
    with django_capture_on_commit_callbacks(execute=True):
        answer = api("developer").delete(f"/api/v1/containers/{row.pk}/?wait=30")
        assert sent == []  # nothing leaves before the commit
    assert answer.status_code == 200, answer.content
    op = answer.json()["operation"]
    assert (op["kind"], op["state"]) == ("container.remove", "succeeded")
    assert op["result"] == {"removed": True, "host_deletion": "queued"}
    row.refresh_from_db()
    assert (row.desired_state, row.observed_state) == ("removed", "removed")
    event = AuditEvent.objects.get(action="container.delete", outcome="allowed")
    assert event.operation_id == op["id"]
    assert sent == [("agent.remove_container", host, [row.pk])]
    # The name is free at once: a create of the same name on the same host is accepted.
    again = api("developer").post(
        "/api/v1/containers/",
        {"team": "tp-alpha", "host": host.name, "spec": {"image": "busybox", "name": "tp-rm-a"}},
        format="json",
    )
    assert again.status_code == 202, again.content


def test_the_hosts_message_waits_for_the_answer_to_be_out(
    teams, host, monkeypatch, django_capture_on_commit_callbacks
):
    from django.http import HttpResponse

    sent = []
    monkeypatch.setattr(dispatch, "send_signed", lambda task, to, args, **kw: sent.append(args))
    row = make_container(teams["alpha"], host, "tp-rm-later", observed_state="stopped")
    later = dispatch.AfterResponse()
    with later.collecting():
        with django_capture_on_commit_callbacks(execute=True):
            dispatch.send_removal_after_commit(row)
        assert sent == []  # committed, kept for after the answer
        response = later.attach(HttpResponse("answer"))
    assert sent == []
    response.close()  # what the server does once the body is out
    assert sent == [[row.pk]]
    # An error before the answer sends what was kept at once; nothing is lost.
    failing = dispatch.AfterResponse()
    with pytest.raises(RuntimeError), failing.collecting():
        with django_capture_on_commit_callbacks(execute=True):
            dispatch.send_removal_after_commit(row)
        raise RuntimeError("on the way to the answer")
    assert sent == [[row.pk], [row.pk]]


@pytest.mark.parametrize("observed", ["running", "paused", "pending", "unknown"])
def test_a_container_that_may_run_is_removed_by_its_host(api, teams, host, observed):
    row = make_container(teams["alpha"], host, f"tp-rm-{observed}", observed_state=observed)
    answer = api("developer").delete(f"/api/v1/containers/{row.pk}/?force=1")
    assert answer.status_code == 202, answer.content
    assert answer.json()["operation"]["state"] == "pending"
    row.refresh_from_db()
    assert (row.desired_state, row.observed_state) == ("removed", observed)


def test_a_remove_behind_pending_work_waits_for_its_host(api, teams, host):
    row = make_container(teams["alpha"], host, "tp-rm-busy", observed_state="stopped")
    assert api("developer").post(f"/api/v1/containers/{row.pk}/start/").status_code == 202
    answer = api("developer").delete(f"/api/v1/containers/{row.pk}/")
    assert answer.status_code == 202 and answer.json()["operation"]["state"] == "pending"
    row.refresh_from_db()
    assert row.observed_state == "stopped"


def test_a_refused_remove_changes_nothing(api, teams, host):
    row = make_container(teams["alpha"], host, "tp-rm-no", observed_state="stopped")
    assert api("viewer").delete(f"/api/v1/containers/{row.pk}/").status_code == 403
    row.refresh_from_db()
    assert row.observed_state == "stopped" and not Operation.objects.exists()


# --- the agent: the host's deletion, and a create of the same name that comes first --------


def _removed_holder(world, name="ap-web"):
    """The world's container made on the host, then its row removed by the web."""
    host, _, container, rt = world
    assert _execute(world, _op(world, "container.create", start=False))[0]["state"] == "succeeded"
    Container.objects.filter(pk=container.pk).update(
        desired_state="removed", observed_state="removed"
    )
    return container


def test_the_host_deletes_a_removed_rows_container(world):
    host, _, _, rt = world
    container = _removed_holder(world)
    assert len(rt.containers) == 1
    assert containers_ops.delete_removed(rt, container.pk, host_name=host.name) == {"removed": True}
    assert rt.containers == {}
    # Again (a redelivered message): nothing left, nothing fails.
    assert containers_ops.delete_removed(rt, container.pk, host_name=host.name) == {"removed": True}


def test_a_network_volume_or_image_removal_first_deletes_removed_holders(world):
    # docker-compose down: the containers' removes are answered, then their network goes at
    # once; the host may not have deleted the containers yet.
    host, team, _, rt = world
    _removed_holder(world)
    live = Container.objects.create(
        team=team, host=host, name="ap-live", image="busybox", spec={"image": "busybox"}
    )
    _execute(world, Operation.objects.create(
        kind="container.create", target_type="container", target_id=str(live.pk), host=host
    ))  # fmt: skip
    kept = removed_holders.without_removed(rt, list(rt.containers.values()), host)
    assert [s["name"] for s in kept] == ["ap-live"]
    assert [s["name"] for s in rt.containers.values()] == ["ap-live"]
    other = Host.objects.create(name=f"ap{uuid.uuid4().hex[:8]}")
    assert removed_holders.without_removed(rt, kept, other) == kept  # another host's label


def test_the_host_leaves_a_row_that_is_not_removed_alone(world):
    host, _, container, rt = world
    _execute(world, _op(world, "container.create", start=False))
    assert containers_ops.delete_removed(rt, container.pk, host_name=host.name)["removed"] is False
    assert containers_ops.delete_removed(rt, container.pk, host_name="other")["removed"] is False
    assert len(rt.containers) == 1


def test_a_create_of_the_name_first_deletes_the_removed_holder(world):
    host, team, old, rt = world
    _removed_holder(world)
    new = Container.objects.create(
        team=team, host=host, name="ap-web", image="busybox", spec=dict(old.spec)
    )
    op = Operation.objects.create(
        kind="container.create",
        target_type="container",
        target_id=str(new.pk),
        host=host,
        team=team,
        params={"start": True},
    )
    assert executor.execute(op.id, host_name=host.name, rt=rt)["state"] == "succeeded"
    (only,) = rt.containers.values()
    assert only["labels"]["io.berth.container"] == f"{host.name}/{new.pk}"
    # The old row's deletion message, arriving last, leaves the new container alone.
    assert containers_ops.delete_removed(rt, old.pk, host_name=host.name) == {"removed": True}
    assert len(rt.containers) == 1


def test_a_name_held_by_a_live_row_is_still_a_conflict(world):
    host, team, old, rt = world
    _execute(world, _op(world, "container.create", start=False))
    # Renamed in the database, not yet on the host: the old name is not free there.
    Container.objects.filter(pk=old.pk).update(name="ap-web-renamed")
    new = Container.objects.create(
        team=team, host=host, name="ap-web", image="busybox", spec=dict(old.spec)
    )
    op = Operation.objects.create(
        kind="container.create", target_type="container", target_id=str(new.pk), host=host
    )
    out = executor.execute(op.id, host_name=host.name, rt=rt)
    assert out["state"] == "failed" and "already in use" in out["error"]
    assert len(rt.containers) == 1


def test_a_holder_deleted_since_the_conflict_lets_the_create_try_again(world):
    _, _, container, rt = world
    container = Container.objects.select_related("host").get(pk=container.pk)
    name_taken = f'the container name "/{container.name}" is already in use by container "x"'
    assert containers_ops._free_name(rt, container, name_taken) is True
    assert containers_ops._free_name(rt, container, "port 8080 is already in use") is False


def test_the_agents_create_and_remove_statements(world):
    """Guards against the bookkeeping growing back (each statement is a round trip)."""
    from rbac import generation

    generation.current()  # the process's one privilege check on PostgreSQL, out of the count
    out, create_sql = _execute(world, _op(world, "container.create", start=True))
    assert out["state"] == "succeeded", out
    rt = world[3]
    for state in rt.containers.values():
        state.update(status="stopped", pid=None)
    out, remove_sql = _execute(world, _op(world, "container.remove"))
    assert out["state"] == "succeeded", out
    # The create's policy check reads the generation: on SQLite through the driver's own
    # connection (rbac/generation.py), which the query log does not see.
    assert (create_sql, remove_sql) == (10 if connection.vendor == "postgresql" else 9, 7)
