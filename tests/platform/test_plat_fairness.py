"""Teams take turns on a host (agent/fairness.py, real Redis) and grace periods are capped."""

import pytest
from agent import fairness

from config.celery import is_long, operation_queue
from containers import maxima
from operations import dispatch
from operations.models import Operation


def _ops(host, team, n):
    return [
        dispatch.new_operation(
            kind="container.create", target_type="container", target_id=i, host=host, team=team
        ).pk
        for i in range(n)
    ]


@pytest.fixture
def scheduler(host, monkeypatch):
    monkeypatch.setenv("BERTH_TEAM_SLOTS", "2")
    monkeypatch.delenv("BERTH_AGENT_LANE", raising=False)
    scheduler = fairness.Scheduler(host.name)

    def clear():
        for key in scheduler.client.scan_iter(f"{fairness.PREFIX}{host.name}:*"):
            scheduler.client.delete(key)

    clear()  # the host's name is the same in every test; Redis outlives a test's database
    yield scheduler
    clear()


def test_a_burst_holds_at_most_its_limit_and_another_team_is_served_next(scheduler, host, teams):
    burst = _ops(host, teams["alpha"], 6)
    [single] = _ops(host, teams["beta"], 1)
    alpha, beta = str(teams["alpha"].pk), str(teams["beta"].pk)
    taken = []
    # Messages arrive in order: six of alpha's, then beta's one; each message is one turn.
    for op_id, team in [*((o, alpha) for o in burst), (single, beta)]:
        scheduler.submit(op_id, team)
        taken.append(scheduler.take())
    # Alpha runs two (its limit); its other four wait, owed; beta's request runs at once.
    assert taken == [burst[0], burst[1], None, None, None, None, single]

    # When one of alpha's ends, a turn is owed and takes alpha's next, in order.
    assert scheduler.release(burst[0], alpha) is True
    assert scheduler.take() == burst[2]


def test_teams_are_served_in_turn(scheduler, host, teams):
    alpha, beta = str(teams["alpha"].pk), str(teams["beta"].pk)
    a_ops, b_ops = _ops(host, teams["alpha"], 3), _ops(host, teams["beta"], 3)
    for op_id in a_ops:
        scheduler.submit(op_id, alpha)
    for op_id in b_ops:
        scheduler.submit(op_id, beta)
    order = [scheduler.take() for _ in range(4)]
    assert order == [a_ops[0], b_ops[0], a_ops[1], b_ops[1]]
    # Both at their limit now: nothing more until one ends.
    assert scheduler.take() is None


def test_a_turn_runs_a_stale_message_directly_and_runs_the_queued_operation(scheduler, host, teams):
    ran = []
    [op_id] = _ops(host, teams["alpha"], 1)
    result = fairness.turn(
        host.name, lambda o, t: ran.append((o, t)) or "ok", op_id=op_id, task_id="t1"
    )
    assert result == "ok" and ran == [(op_id, "t1")]
    Operation.objects.filter(id=op_id).update(state=Operation.State.SUCCEEDED)
    fairness.turn(host.name, lambda o, t: ran.append((o, t)), op_id=op_id, task_id="t2")
    assert ran[-1] == (op_id, "t2")  # not pending: the executor's claim skips it


def test_long_work_has_its_own_queue():
    assert is_long("image.pull") and is_long("backup.run") and not is_long("container.stop")
    assert operation_queue("host.h1", "image.build") == "host.h1.long"
    assert operation_queue("host.h1", "container.create") == "host.h1"


def test_grace_periods_are_capped_by_the_role_or_60_s():
    assert maxima.stop_timeout_problem(60, {}) == ""
    assert "61 s asked, the maximum for your role is 60 s" in maxima.stop_timeout_problem(61, {})
    assert maxima.stop_timeout_problem(300, {"stop_timeout": 300}) == ""
    assert maxima.violations({"stop_timeout": 90}, {}) == [
        maxima.stop_timeout_problem(90, {}, what="stop_timeout")
    ]
    assert maxima.violations({"stop_timeout": 90}, {"stop_timeout": 120}) == []
    assert maxima.valid({"stop_timeout": 120}) == ""


def test_the_apis_refuse_a_grace_period_above_the_cap(api, users, containers, monkeypatch):
    from django.test import Client
    from dockerapi import containers as docker_containers

    from accounts.models import ApiToken

    monkeypatch.setattr(docker_containers, "WAIT_SECONDS", 0)  # no agent consumes the queue
    alpha = containers["alpha"]
    client = api("developer")
    refused = client.post(f"/api/v1/containers/{alpha.pk}/stop/", {"timeout": 61}, format="json")
    assert refused.status_code == 400
    assert "61 s asked, the maximum for your role is 60 s" in refused.content.decode()
    refused = client.post(
        f"/api/v1/containers/{alpha.pk}/restart/", {"timeout": 3600}, format="json"
    )
    assert refused.status_code == 400
    assert (
        client.post(
            f"/api/v1/containers/{alpha.pk}/stop/", {"timeout": 60}, format="json"
        ).status_code
        == 202
    )
    assert not Operation.objects.filter(kind="container.restart").exists()  # nothing half-done

    _, secret = ApiToken.issue(users["developer"], "docker-cap")
    docker = Client(HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_USER_AGENT="Docker-Client/28.2.2")
    refused = docker.post(f"/v1.47/containers/{alpha.name}/stop?t=120")
    assert refused.status_code == 400 and "t: 120 s asked" in refused.json()["message"]
