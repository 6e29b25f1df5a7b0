"""operations.broker_health.Ping: a PING sent early and read later leaves the pool clean."""

import pytest

from operations import broker_health


def test_a_ping_read_or_never_read_leaves_the_connection_clean(broker):
    client = broker_health._client()
    with broker_health.Ping() as pending:
        pending.result()
    for _ in range(3):
        with broker_health.Ping():
            pass  # the gate refused first: the answer is read if it is there, else dropped
    # Whatever connection the pool hands out next answers its own command, not a PONG.
    client.set("berth:test:ping", "x")
    assert client.get("berth:test:ping") == b"x"
    client.delete("berth:test:ping")
    broker_health.ping()


def test_a_ping_of_a_broker_that_is_down_raises_when_read(broker_down):
    with broker_health.Ping() as pending, pytest.raises(Exception) as caught:
        pending.result()
    assert "Connection" in type(caught.value).__name__ or "refused" in str(caught.value)
