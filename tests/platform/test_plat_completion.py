"""?wait= wakes on the agent's announcement, and the Operation row stays the truth."""

import pytest
from agent import claims

from operations import completion
from operations.dispatch import new_operation, wait_for
from operations.models import Operation

pytestmark = pytest.mark.django_db


@pytest.fixture
def op(host):
    """A running operation on the test host, as an agent has just claimed it."""
    created = new_operation(kind="container.start", target_type="container", target_id=1, host=host)
    Operation.objects.filter(pk=created.pk).update(state=Operation.State.RUNNING)
    created.refresh_from_db()
    return created


def test_finish_announces_the_outcome_after_commit(op, django_capture_on_commit_callbacks):
    with completion.Listener(op.pk) as listener:
        assert listener.pubsub is not None, "the subscription to the broker was not confirmed"
        with django_capture_on_commit_callbacks(execute=True):
            claims.finish(op, result={"ok": True})
        assert listener.wait(10) is True
    assert wait_for(op, 1).state == Operation.State.SUCCEEDED


def test_a_message_does_not_finish_the_operation(op):
    # Anyone with Redis access can publish: the answer still comes from the row.
    completion.publish(op.pk, "succeeded")
    assert wait_for(op, 0.3).state == Operation.State.RUNNING


def test_a_lost_announcement_costs_one_slow_poll(op, monkeypatch):
    # The agent committed but its message never came: the waiter reads the row anyway.
    monkeypatch.setattr(completion, "SLOW_POLL_SECONDS", 0.05)
    real_wait = completion.Listener.wait

    def agent_finishes_silently(self, seconds):
        Operation.objects.filter(pk=op.pk).update(state=Operation.State.FAILED, error="x")
        return real_wait(self, seconds)

    monkeypatch.setattr(completion.Listener, "wait", agent_finishes_silently)
    assert wait_for(op, 30).state == Operation.State.FAILED


def test_without_redis_the_wait_polls_the_row(op, broker_down, monkeypatch):
    def agent_finishes(self, seconds):
        Operation.objects.filter(pk=op.pk).update(state=Operation.State.SUCCEEDED)
        return False

    with completion.Listener(op.pk) as listener:
        assert listener.pubsub is None
        completion.publish(op.pk, "succeeded")  # logged, never raised
    monkeypatch.setattr(completion.Listener, "wait", agent_finishes)
    assert wait_for(op, 30).state == Operation.State.SUCCEEDED
