"""The agent's bookkeeping against an in-memory stand-in for the runtime (fast, no root).

These check what the database sees (claims, outcomes, ghosts, heartbeats); the real runtime,
Redis and worker are exercised by the e2e tests beside this file.
"""

import itertools
import os
import uuid
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from agent import executor, heartbeat, lookup, reconcile
from django.utils import timezone

from accounts.models import Membership, Team, User
from containers.models import Container
from hosts.models import Host
from images.models import Image
from operations.models import Operation
from rbac import gate
from rbac.models import Role, RoleBinding
from runtime.errors import InvalidState, NotFound

BASE_SPEC = {"image": "busybox", "command": ["sleep", "1000"]}


class FakeImages:
    """The image store's list(), from a dict of id -> SimpleNamespace(id, repo_tags, ...)."""

    def __init__(self):
        self.images = {}

    def add(self, image_id, *tags):
        self.images[image_id] = SimpleNamespace(
            id=image_id, repo_tags=list(tags), size=1234, config={}, created=""
        )

    def list(self):
        return list(self.images.values())


class FakeRuntime:
    """Just enough of runtime.api.Runtime's verbs, kept in a dict, counting creates."""

    def __init__(self):
        self.config = SimpleNamespace(networks_dir=Path("/nonexistent/berth-networks"))
        self.images = FakeImages()
        self.reconciled = 0
        self.containers = {}
        self.creates = 0
        self._ids = itertools.count(1)

    def _get(self, ref):
        for state in self.containers.values():
            if ref in (state["id"], state["name"]):
                return state
        raise NotFound(f"no such container: {ref}")

    def create(self, spec):
        if any(s["name"] == spec.name for s in self.containers.values()):
            raise InvalidState(f"name {spec.name} is taken")
        self.creates += 1
        cid = f"{next(self._ids):064x}"
        self.containers[cid] = {
            "id": cid,
            "name": spec.name,
            "status": "created",
            "pid": None,
            "exit_code": None,
            "spec": spec.to_dict(),
        }
        return dict(self.containers[cid])

    def reconcile(self):
        self.reconciled += 1
        return []

    def run(self, spec):
        state = self.create(spec)
        self.start(state["id"])
        return self.state(state["id"])

    def state(self, ref):
        return dict(self._get(ref))

    def list(self):
        return [dict(s) for s in self.containers.values()]

    def start(self, ref):
        # As the real runtime's start: the state after it (the agent records it as it is).
        self._get(ref).update(status="running", pid=4242)
        return self.state(ref)

    def stop(self, ref, timeout=None, run_pid=None):
        state = self._get(ref)
        if run_pid and state["status"] == "running" and state["pid"] != run_pid:
            return dict(state)  # as the real runtime: a run begun since is not this stop's
        state.update(status="stopped", pid=None, exit_code=143)
        return dict(state)

    def signal_stop(self, ref, timeout=None, keep=False):
        # The fake's process ends on the stop signal at once (the real shim waits the grace).
        self.stop(ref, timeout)
        return self.state(ref)

    def delete(self, ref, force=False):
        state = self._get(ref)
        if state["status"] == "running" and not force:
            raise InvalidState("running")
        del self.containers[state["id"]]


@pytest.fixture
def world(db):
    """An admin who created one container on one host."""
    host = Host.objects.create(name=f"u{uuid.uuid4().hex[:8]}")
    team = Team.objects.create(name="alpha")
    admin = User.objects.create_user("admin", password="x")
    Membership.objects.create(team=team, user=admin)
    RoleBinding.objects.create(user=admin, role=Role.objects.get(name="admin"))
    container = Container.objects.create(
        team=team, host=host, name="web", image="busybox", spec=dict(BASE_SPEC), created_by=admin
    )
    return {"host": host, "team": team, "admin": admin, "container": container, "rt": FakeRuntime()}


def _op(world, kind, **params):
    return Operation.objects.create(
        kind=kind,
        target_type="container",
        target_id=str(world["container"].id),
        host=world["host"],
        team=world["team"],
        params=params,
    )


def _run(world, op, **kw):
    return executor.execute(op.id, host_name=world["host"].name, rt=world["rt"], **kw)


def test_create_start_records_observed_state(world):
    out = _run(world, _op(world, "container.create", start=True))
    assert out["state"] == "succeeded", out
    c = Container.objects.get(id=world["container"].id)
    assert (c.observed_state, c.pid) == ("running", 4242)
    assert c.runtime_id and world["rt"].state(c.runtime_id)["name"] == "web"
    labels = world["rt"].state(c.runtime_id)["spec"]["labels"]
    assert labels[lookup.LABEL] == lookup.label_value(c)


def test_a_redelivered_task_does_nothing_twice(world):
    op = _op(world, "container.create")
    assert _run(world, op)["state"] == "succeeded"
    assert _run(world, op)["state"] == "skipped"
    assert world["rt"].creates == 1


def test_recovered_running_operation_converges_on_one_container(world):
    op = _op(world, "container.start")
    # A previous agent claimed it, created the container and died before saving anything.
    Operation.objects.filter(id=op.id).update(state="running")
    from agent.containers_ops import runtime_spec

    world["rt"].create(runtime_spec(world["container"]))
    assert _run(world, op)["state"] == "skipped"  # a plain redelivery does not take it
    out = _run(world, op, recovering=True)
    assert out["state"] == "succeeded", out
    assert world["rt"].creates == 1 and len(world["rt"].list()) == 1
    assert Container.objects.get(id=world["container"].id).observed_state == "running"


def test_operation_of_another_host_is_refused(world):
    op = _op(world, "container.create")
    out = executor.execute(op.id, host_name="elsewhere", rt=world["rt"])
    assert out["state"] == "skipped"
    assert Operation.objects.get(id=op.id).state == "pending"


def test_policy_is_checked_again_in_the_agent(world):
    developer = User.objects.create_user("dev", password="x")
    Container.objects.filter(id=world["container"].id).update(
        created_by=developer, spec={**BASE_SPEC, "privileged": True}
    )
    out = _run(world, _op(world, "container.create"))
    assert out["state"] == "failed"
    assert "container.privileged" in out["error"]
    assert world["rt"].creates == 0


def test_unknown_kind_fails_cleanly(world):
    out = _run(world, _op(world, "container.teleport"))
    assert out["state"] == "failed" and "teleport" in out["error"]


def test_stop_and_remove(world):
    _run(world, _op(world, "container.create", start=True))
    assert _run(world, _op(world, "container.stop"))["state"] == "succeeded"
    c = Container.objects.get(id=world["container"].id)
    assert (c.observed_state, c.exit_code) == ("stopped", 143)
    assert _run(world, _op(world, "container.remove"))["state"] == "succeeded"
    assert world["rt"].list() == []
    assert Container.objects.get(id=world["container"].id).observed_state == "removed"
    # Removing again is no error: the verb is idempotent.
    assert _run(world, _op(world, "container.remove"))["state"] == "succeeded"


def test_ghost_is_marked_and_recreated_when_it_should_run(world):
    _run(world, _op(world, "container.create", start=True))
    Container.objects.filter(id=world["container"].id).update(desired_state="running")
    world["rt"].containers.clear()  # the host lost it (reboot, manual rm)
    counts = reconcile.reconcile_host(world["host"].name, rt=world["rt"])
    assert counts["ghosts"] == 1 and counts["repaired"] == 1
    c = Container.objects.get(id=world["container"].id)
    assert c.observed_state == "running"
    repair = Operation.objects.filter(
        target_id=str(c.id), params__reason__startswith="reconcile"
    ).get()
    assert repair.state == "succeeded"


def test_ghost_that_should_not_run_is_marked_stopped(world):
    _run(world, _op(world, "container.create"))
    Container.objects.filter(id=world["container"].id).update(desired_state="stopped")
    world["rt"].containers.clear()
    counts = reconcile.reconcile_host(world["host"].name, rt=world["rt"])
    assert counts["ghosts"] == 1 and counts["repaired"] == 0
    assert Container.objects.get(id=world["container"].id).observed_state == "stopped"
    assert world["rt"].creates == 1


def test_exit_reaches_the_database(world):
    _run(world, _op(world, "container.create", start=True))
    state = world["rt"].list()[0]
    world["rt"].containers[state["id"]].update(status="stopped", exit_code=3, pid=None)
    assert reconcile.reconcile_host(world["host"].name, rt=world["rt"])["updated"] == 1
    c = Container.objects.get(id=world["container"].id)
    assert (c.observed_state, c.exit_code) == ("stopped", 3)
    # Nothing changed: nothing written.
    assert reconcile.reconcile_host(world["host"].name, rt=world["rt"])["updated"] == 0


def test_startup_recovers_pending_and_running_operations(world):
    agent_started = timezone.now()
    op1 = _op(world, "container.create")
    # Claimed by the previous agent, which died.
    Operation.objects.filter(id=op1.id).update(
        state="running", started_at=agent_started - timedelta(seconds=5)
    )
    op2 = _op(world, "container.start")
    reconcile.reconcile_host(world["host"].name, agent_started=agent_started, rt=world["rt"])
    assert set(
        Operation.objects.filter(id__in=[op1.id, op2.id]).values_list("state", flat=True)
    ) == {"succeeded"}
    assert world["rt"].creates == 1
    assert world["rt"].reconciled == 1


def test_startup_leaves_operations_of_the_live_agent_alone(world):
    agent_started = timezone.now() - timedelta(seconds=5)
    op = _op(world, "container.create")
    # Claimed by a task of this very agent, still running.
    Operation.objects.filter(id=op.id).update(state="running", started_at=timezone.now())
    counts = reconcile.reconcile_host(
        world["host"].name, agent_started=agent_started, rt=world["rt"]
    )
    assert counts["recovered"] == 0
    assert Operation.objects.get(id=op.id).state == "running"
    assert world["rt"].creates == 0


def test_heartbeat_marks_silent_hosts_down(world):
    other = Host.objects.create(
        name="silent",
        state="up",
        last_heartbeat=timezone.now() - heartbeat.DOWN_AFTER - timedelta(seconds=1),
    )
    assert heartbeat.beat(world["host"].name, info={"kernel": "x"}) == 1
    world["host"].refresh_from_db()
    other.refresh_from_db()
    assert world["host"].state == "up" and world["host"].last_heartbeat is not None
    assert other.state == "down"


def test_startup_closes_dead_terminal_sessions_and_leaves_new_ones(world):
    agent_started = timezone.now()
    dead = _op(world, "container.terminal")
    Operation.objects.filter(id=dead.id).update(
        state="running", started_at=agent_started - timedelta(seconds=5)
    )
    new = _op(world, "container.terminal")
    reconcile.reconcile_host(world["host"].name, agent_started=agent_started, rt=world["rt"])
    dead.refresh_from_db()
    new.refresh_from_db()
    assert dead.state == "failed" and "session ended" in dead.error
    assert new.state == "pending"  # agent.relay_terminal's to take


def test_store_images_become_shared_rows_and_gone_ones_go(world):
    rt, host = world["rt"], world["host"]
    rt.images.add("sha256:" + "a" * 64, "busybox:latest")
    counts = reconcile.reconcile_host(host.name, rt=rt)
    assert counts["images_added"] == 1
    row = Image.objects.get(host=host)
    assert (row.image_id, row.repo_tags, row.team_id) == (
        "sha256:" + "a" * 64,
        ["busybox:latest"],
        None,
    )
    # Visible through the gate to a viewer of another team: a shared image.
    viewer = User.objects.create_user("viewer", password="x")
    other = Team.objects.create(name="beta")
    Membership.objects.create(team=other, user=viewer)
    RoleBinding.objects.create(user=viewer, role=Role.objects.get(name="viewer"), scope_team=other)
    assert list(gate.restrict(Image.objects.all(), viewer, "image.view")) == [row]
    # A second pass changes nothing; a retag is followed; an image gone from the host goes.
    assert reconcile.reconcile_host(host.name, rt=rt)["images_added"] == 0
    rt.images.images["sha256:" + "a" * 64].repo_tags = ["busybox:1"]
    reconcile.reconcile_host(host.name, rt=rt)
    assert Image.objects.get(host=host).repo_tags == ["busybox:1"]
    rt.images.images.clear()
    assert reconcile.reconcile_host(host.name, rt=rt)["images_removed"] == 1
    assert not Image.objects.filter(host=host).exists()


def test_image_sync_waits_while_an_image_operation_is_in_flight(world):
    rt, host = world["rt"], world["host"]
    rt.images.add("sha256:" + "b" * 64, "private:1")
    op = Operation.objects.create(
        kind="image.import", target_type="image", host=host, team=world["team"], state="running"
    )
    # A private import half-way (stored, row not yet written) must not become a shared row.
    assert reconcile.reconcile_host(host.name, rt=rt)["images_added"] == 0
    assert not Image.objects.filter(host=host).exists()
    Operation.objects.filter(id=op.id).update(
        state="succeeded", finished_at=timezone.now() - timedelta(minutes=1)
    )
    assert reconcile.reconcile_host(host.name, rt=rt)["images_added"] == 1


class StaleListRuntime(FakeRuntime):
    """list() answers from a snapshot taken before the last create (a pass racing a create)."""

    def __init__(self):
        super().__init__()
        self.snapshot = {}

    def list(self):
        return [dict(s) for s in self.snapshot.values()]


def test_a_create_finished_after_the_runtime_list_is_no_ghost(world):
    rt = StaleListRuntime()
    world["rt"] = rt
    _run(world, _op(world, "container.create", start=True))
    Container.objects.filter(id=world["container"].id).update(desired_state="running")
    # The pass listed the host before the create finished, then read the rows after it.
    counts = reconcile.reconcile_host(world["host"].name, rt=rt)
    assert counts["ghosts"] == 0 and counts["repaired"] == 0
    assert rt.creates == 1
    c = Container.objects.get(id=world["container"].id)
    assert c.observed_state == "running"
    assert not Operation.objects.filter(params__reason__startswith="reconcile").exists()


def test_exec_as_root_needs_the_webs_root_allowed():
    from agent.containers_ops import refuse_root_unless_allowed

    from runtime.errors import InvalidSpec

    class Uids:
        """Answers exec_uid as a container whose default user is root and has `nobody`."""

        def exec_uid(self, ref, user=None):
            return 65534 if user == "nobody" else 0

    refuse_root_unless_allowed(Uids(), "c", "nobody", {})  # not root: fine
    refuse_root_unless_allowed(Uids(), "c", None, {"root_allowed": True})
    for params in ({}, {"root_allowed": False}, {"root_allowed": "yes"}):
        with pytest.raises(InvalidSpec, match="container.exec_root"):
            refuse_root_unless_allowed(Uids(), "c", None, params)


def test_a_parked_stop_whose_container_runs_again_ends_without_stopping_the_new_run(world):
    """A start during the grace waited for the stop's end and ran it again (the runtime's
    _finish_pending_stop): the Waiter completes the stop and leaves the new run alone."""
    from agent import waiting

    _run(world, _op(world, "container.create", start=True))
    rt = world["rt"]
    [state] = rt.list()
    op = _op(world, "container.stop")
    Operation.objects.filter(id=op.id).update(state=Operation.State.RUNNING)
    waiting.park(op, dict(state, pid=1111), then="", grace=0)  # it waited for pid 1111's end
    op.refresh_from_db()
    assert waiting.complete(rt, op)
    op.refresh_from_db()
    assert op.state == Operation.State.SUCCEEDED
    assert rt.state(state["id"])["status"] == "running"
    assert Container.objects.get(id=world["container"].id).observed_state == "running"


class GraceRuntime(FakeRuntime):
    """A stop sits out its grace: the container stays running, its old run, until the runtime's
    start waits the stop out and begins a new run (as StopVerbs._finish_pending_stop)."""

    def signal_stop(self, ref, timeout=None, keep=False):
        self._get(ref)["stopping"] = True
        return self.state(ref)

    def start(self, ref):
        state = self._get(ref)
        if state.pop("stopping", False):
            state.update(status="running", pid=state["pid"] + 1)  # the stop's end, a new run
        elif state["status"] != "running":
            state.update(status="running", pid=4242)
        return self.state(ref)


def test_a_start_during_a_stops_grace_goes_through_the_runtimes_start(world):
    # The faults e2e test: a start run while a stop was parked found the container running
    # (the old run, until the shim's kill) and answered it as started; the stop's kill then
    # left it stopped while its row wants it running.
    rt = world["rt"] = GraceRuntime()
    _run(world, _op(world, "container.create", start=True))
    [state] = rt.list()
    rt.signal_stop(state["id"], timeout=600)
    out = _run(world, _op(world, "container.start"))
    assert out["state"] == "succeeded", out
    assert rt.state(state["id"]) == dict(state, pid=4243)  # a new run, not the old one
    assert Container.objects.get(id=world["container"].id).pid == 4243
    # A running container with no stop pending stays as it is.
    assert _run(world, _op(world, "container.start"))["state"] == "succeeded"
    assert rt.state(state["id"])["pid"] == 4243


class StaleRead(FakeRuntime):
    """The Waiter reads the old run's state; a start then begins a new run before it acts."""

    seen: dict | None = None  # what the next state() answers over the real one, once

    def state(self, ref):
        if self.seen:
            self.seen, seen = None, self.seen
            return dict(self._get(ref), **seen)
        return super().state(ref)

    def kill(self, ref, sig="KILL", run_pid=None):
        state = self._get(ref)
        if not (run_pid and state["pid"] != run_pid):
            state.update(status="stopped", pid=None, exit_code=137)


@pytest.mark.parametrize(
    "seen",
    [{"status": "running", "pid": 1111}, {"status": "stopped", "pid": None}],
    ids=["past-the-deadline", "exited"],
)
def test_a_waiter_that_read_the_old_run_leaves_a_run_started_since(world, seen):
    # The shim gone, nobody killed at the deadline; a start asked meanwhile reaped the old
    # run and began a new one after the Waiter's read. Its kill (or its stop) is for the old
    # run only: the container stays running, as its owner asked last (seen in the faults e2e).
    from agent import waiting

    rt = world["rt"] = StaleRead()
    _run(world, _op(world, "container.create", start=True))
    [state] = rt.list()
    rt.seen = seen
    op = _op(world, "container.stop")
    Operation.objects.filter(id=op.id).update(state=Operation.State.RUNNING)
    waiting.park(op, dict(state, pid=1111), then="", grace=-60)  # its deadline long past
    op.refresh_from_db()
    waiting.complete(rt, op)
    assert rt.state(state["id"])["status"] == "running"


def test_a_park_wakes_the_idle_waiter_through_its_pipe(
    world, monkeypatch, django_capture_on_commit_callbacks
):
    # Idle, the Waiter sleeps on the wake pipe instead of reading the database five times a
    # second (half of an idle agent's CPU); a park in a pool worker must wake it at once.
    import threading

    from agent import waiting

    pipe = waiting.WakePipe()
    pipe.open()
    monkeypatch.setattr(waiting, "WAKE", pipe)
    monkeypatch.setattr(waiting, "IDLE_POLL_SECONDS", 3600)
    op = _op(world, "container.stop")
    Operation.objects.filter(id=op.id).update(state=Operation.State.RUNNING)
    waiter = waiting.Waiter(world["host"].name, lambda: world["rt"])
    sleeper = threading.Thread(target=waiter._sleep, args=([],), daemon=True)
    sleeper.start()
    with django_capture_on_commit_callbacks(execute=True):  # the wake follows the commit
        waiting.park(op, {"id": "r" * 64, "pid": 4242}, then="", grace=5)
    sleeper.join(60)  # an hour without the wake
    assert not sleeper.is_alive()
    assert [p.id for p in waiter.parked()] == [op.id]
    with pytest.raises(BlockingIOError):  # drained: the next sleep waits for the next park
        os.read(pipe.reader(), 1)
