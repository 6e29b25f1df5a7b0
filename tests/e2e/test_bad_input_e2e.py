"""Issue 22, agent side: what only the host can judge is checked before anything is created,
and a refused create marks the row failed (observed `error` with the reason), never `pending`.

The spec reaches the agent as the web stored it; one the agent's own parse refuses (here a row
written past the web's checks) must leave no runtime object, and the reconciler must not keep
re-creating it.
"""

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
