"""The create path's hand-written answers match the DRF serializers, its messages to the agent
ask Celery for no stored result (the Operation row is the outcome), and the agent's turn in
one round trip to Redis schedules as the two calls did."""

import base64
import json

import pytest
import redis
from agent import fairness
from agent import tasks as agent_tasks
from django.utils import timezone

from containers.api.serializers import ContainerListSerializer, ContainerSerializer
from containers.api.views import _container_body
from containers.models import Container
from health.models import ContainerHealth
from operations import completion, dispatch
from operations.api.serializers import OperationSerializer
from operations.models import Operation

pytestmark = pytest.mark.django_db


def _body(api, host, name):
    spec = {"image": "busybox", "name": name, "labels": {"a": "b"}}
    response = api("developer").post(
        "/api/v1/containers/",
        {"team": host.name.rsplit("-", 1)[0] + "-alpha", "host": host.name, "spec": spec},
        format="json",
    )
    assert response.status_code == 202, response.content
    return response.json()


def test_answers_match_the_serializers(api, host, broker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        body = _body(api, host, "tp-ans1")
    op = Operation.objects.select_related("host").get(pk=body["operation"]["id"])
    container = Container.objects.select_related("team", "host").get(pk=body["container"]["id"])
    assert body["operation"] == json.loads(json.dumps(OperationSerializer(op).data))
    assert body["container"] == json.loads(json.dumps(ContainerSerializer(container).data))
    assert list(body["container"]) == list(ContainerSerializer(container).data)

    # As the agent leaves them: done, timestamps set, observed, a health row.
    now = timezone.now()
    Operation.objects.filter(pk=op.pk).update(
        state="succeeded", started_at=now, finished_at=now, result={"x": 1}
    )
    Container.objects.filter(pk=container.pk).update(
        observed_state="running", pid=42, observed_at=now, network_info={"ip": "10.0.0.2"}
    )
    ContainerHealth.objects.create(container=container, status="healthy", log=[{"exit_code": 0}])
    op.refresh_from_db()
    fresh = Container.objects.select_related("team", "host", "health").get(pk=container.pk)
    assert OperationSerializer.answer(op) == OperationSerializer(op).data
    assert _container_body(container)["container"] == ContainerSerializer(fresh).data
    columns = ContainerListSerializer.COLUMNS
    values = Container.objects.filter(pk=container.pk).values_list(*columns, "spec").get()
    assert list(ContainerListSerializer.detail_row(values)) == list(ContainerSerializer(fresh).data)
    redis.Redis.from_url(broker).delete(host.queue)


def test_operation_messages_ask_for_no_result(
    api, host, broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _body(api, host, "tp-ans2")
    client = redis.Redis.from_url(broker)
    (raw,) = client.lrange(host.queue, 0, -1)
    message = json.loads(raw)
    assert message["headers"]["task"] == "agent.execute_operation"
    assert message["headers"]["ignore_result"] is True
    assert json.loads(base64.b64decode(message["body"]))[0]
    # The agent's side stores none either, whoever sent the message.
    for task in (
        agent_tasks.execute_operation,
        agent_tasks.remove_container,
        agent_tasks.fair_turn,
    ):
        assert task.ignore_result is True
    client.delete(host.queue)


def test_submit_and_take_is_submit_then_take(host, teams, monkeypatch):
    """The agent's one-round-trip turn (fairness.Scheduler.submit_and_take) schedules as the
    two calls did: a burst holds its team's limit and another team is served next."""
    monkeypatch.setenv("BERTH_TEAM_SLOTS", "2")
    monkeypatch.delenv("BERTH_AGENT_LANE", raising=False)
    scheduler = fairness.Scheduler(host.name + "-one")

    def clear():
        for key in scheduler.client.scan_iter(f"{scheduler.prefix}*"):
            scheduler.client.delete(key)

    def ops(team, n):
        return [
            dispatch.new_operation(
                kind="container.create", target_type="container", target_id=i, host=host, team=team
            ).pk
            for i in range(n)
        ]

    clear()
    try:
        burst, (single,) = ops(teams["alpha"], 4), ops(teams["beta"], 1)
        alpha, beta = str(teams["alpha"].pk), str(teams["beta"].pk)
        taken = [
            scheduler.submit_and_take(op_id, team)
            for op_id, team in [*((o, alpha) for o in burst), (single, beta)]
        ]
        assert taken == [burst[0], burst[1], None, None, single]
        assert scheduler.release(burst[0], alpha) is True
        assert scheduler.take() == burst[2]
    finally:
        clear()


def test_waits_reuse_one_subscription_and_ignore_other_operations(broker):
    """operations/completion.py keeps a waiter's Redis subscription for the next one (no new
    connection per wait); what the last waiter's channel still receives wakes nobody."""
    with completion.Listener(900001) as first:
        assert first.pubsub is not None
        connection = first.pubsub.connection
    with completion.Listener(900002) as second:
        assert second.pubsub is not None and second.pubsub.connection is connection
        completion.publish(900001, "succeeded")  # the old channel: unsubscribed, ignored
        assert second.wait(0.3) is False
        completion.publish(900002, "succeeded")
        assert second.wait(5) is True
