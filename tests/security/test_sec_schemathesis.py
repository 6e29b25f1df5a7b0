"""A bounded schemathesis run against the WSGI app: no server errors, only documented statuses.

Every operation of the OpenAPI schema gets a few generated requests (valid and invalid ones)
with an admin's bearer token. Each request runs in a savepoint that is rolled back; no agent
consumes the queue (operations stay pending, tasks are never sent: on-commit hooks do not fire
inside the test's transaction), and read calls to hosts answer at once (see answering_hosts).
"""

import time

import pytest
from django.core import signals
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections, transaction
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.openapi import from_dict
from schemathesis.specs.openapi.checks import status_code_conformance

from operations import dispatch
from operations.models import Operation

pytestmark = pytest.mark.django_db

EXAMPLES = 4  # per operation and generation mode: about 550 requests, ~15 s here


@pytest.fixture(autouse=True)
def fresh_throttles():
    """The join endpoint's per-address throttle lives in the cache: this walk spends it, so
    it starts and leaves the count at zero for the tests after it."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def connection_kept():
    """The WSGI handler closes the database connection at the end of each request when it is
    not in autocommit, which the test's transaction never is (PostgreSQL then has none left);
    Django's test client unhooks the same signal handlers for the same reason."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def answering_hosts(monkeypatch, settings, tmp_path):
    """Hosts answer read calls at once (no agent runs here), ?wait= never waits, and uploaded
    archives land in the test's own directory."""
    monkeypatch.setattr(dispatch, "call_host", lambda host, task, *a, **k: {"task": task})
    settings.BERTH_MAX_WAIT_SECONDS = 0
    settings.UPLOAD_DIR = tmp_path / "uploads"
    settings.BERTH_TRANSFER_DIR = str(tmp_path / "transfers")


def _schema():
    raw = SchemaGenerator().get_schema(request=None, public=True)
    schema = from_dict(raw)
    schema.app = WSGIHandler()
    return schema


def _summary(exc) -> str:
    parts = getattr(exc, "exceptions", None) or [exc]
    return "; ".join(f"{type(e).__name__}: {str(e).splitlines()[0][:120]}" for e in parts)


def _run(operation, mode, headers, failures, ids=None) -> int:
    """EXAMPLES generated cases of one operation; failures are collected, not shrunk."""
    sent = []

    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=ids))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        with transaction.atomic():
            response = case.call(headers=headers)
            transaction.set_rollback(True)
        sent.append(1)
        try:
            case.validate_response(response, checks=[not_a_server_error, status_code_conformance])
        except (Exception, BaseExceptionGroup) as exc:  # a FailureGroup: keep its summary
            failures.append((case.method, case.formatted_path, response.status_code, _summary(exc)))

    check()
    return len(sent)


def test_schemathesis_finds_no_server_error_and_no_undocumented_status(users, containers, bearer):
    _, secret = bearer("admin")
    headers = {"Authorization": f"Bearer {secret}"}
    schema = _schema()
    failures: list = []
    sent = 0
    started = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 50
    # Random ids mostly meet 404: one pass names the fixture's objects (row 1 of each table).
    real = {"id": str(containers["alpha"].pk), "user_id": str(users["developer"].pk)}
    for operation in operations:
        ids = {k: v for k, v in real.items() if f"{{{k}}}" in operation.path} or None
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            sent += _run(operation, mode, headers, failures)
        if ids:
            sent += _run(operation, GenerationMode.POSITIVE, headers, failures, ids)
    elapsed = time.monotonic() - started
    print(f"schemathesis: {sent} requests to {len(operations)} operations in {elapsed:.1f} s")
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(map(repr, failures[:30]))
    assert sent > 200
    assert not Operation.objects.exists()
