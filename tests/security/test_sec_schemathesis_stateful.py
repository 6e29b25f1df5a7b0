"""Schemathesis' stateful phase (issue 22): sequences of calls linked through the objects they
create and return (links inferred from the OpenAPI schema), against the WSGI app.

Every response must be no server error and a documented status. The whole walk runs inside
the test's transaction (rolled back at the end): no agent consumes the queue and no task is
sent (on-commit hooks do not fire inside it), and read calls to hosts answer at once.
"""

import time

import pytest
from django.core.cache import cache
from django.db import transaction
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from operations.models import Operation
from tests.security.test_sec_schemathesis import (
    _schema,
    _summary,
    answering_hosts,
    connection_kept,
    fresh_throttles,
)

__all__ = ["answering_hosts", "connection_kept", "fresh_throttles"]  # autouse fixtures

pytestmark = pytest.mark.django_db

SEQUENCES = 25  # hypothesis examples: each a sequence of up to STEPS linked calls
STEPS = 5


def test_stateful_sequences_find_no_server_error_and_no_undocumented_status(
    users, containers, bearer
):
    _, secret = bearer("admin")
    headers = {"Authorization": f"Bearer {secret}"}
    failures: list = []
    calls: list = []

    class Workflow(_schema().as_state_machine()):
        def setup(self):
            # Each sequence starts from the same rows: hypothesis needs the same answers to
            # the same calls, so a sequence's writes are rolled back when it ends.
            cache.clear()
            self._atomic = transaction.atomic()
            self._atomic.__enter__()

        def teardown(self):
            transaction.set_rollback(True)
            self._atomic.__exit__(None, None, None)

        def get_call_kwargs(self, case):
            return {"headers": headers}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            calls.append(1)
            try:
                case.validate_response(
                    response, checks=[not_a_server_error, status_code_conformance]
                )
            except (Exception, BaseExceptionGroup) as exc:  # collect, do not shrink
                failures.append(
                    (case.method, case.formatted_path, response.status_code, _summary(exc))
                )

    started = time.monotonic()
    run_state_machine_as_test(
        Workflow,
        settings=settings(
            max_examples=SEQUENCES,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        ),
    )
    elapsed = time.monotonic() - started
    print(f"schemathesis stateful: {len(calls)} calls in {elapsed:.1f} s")
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(map(repr, failures[:30]))
    assert len(calls) > SEQUENCES
    assert not Operation.objects.filter(state="running").exists()
