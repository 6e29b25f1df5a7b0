"""The lists' "not removed" filter is written into the SQL as a constant (containers/not_removed.py):
SQLite compiles a statement again on every execute when a bound parameter is compared with the
column of a partial index's condition, which cost the API list a fifth of its time."""

import pytest
from django.db import connection
from django.test import Client

from accounts.models import ApiToken
from containers.models import Container
from containers.not_removed import NOT_REMOVED, FixedText
from tests.platform.factories import make_container

pytestmark = pytest.mark.django_db


@pytest.fixture
def listed(teams, host):
    """Two live containers and a removed one."""
    make_container(teams["alpha"], host, "lf-a")
    make_container(teams["beta"], host, "lf-b", observed_state="stopped")
    make_container(teams["alpha"], host, "lf-gone", observed_state="removed")


class _Statements:
    """(sql, params) of every statement run, as the driver gets them."""

    def __init__(self):
        self.seen = []

    def __call__(self, execute, sql, params, many, context):
        self.seen.append((sql, tuple(params or ())))
        return execute(sql, params, many, context)

    def reading_containers(self):
        return [(sql, p) for sql, p in self.seen if 'FROM "containers_container"' in sql]


def _assert_state_is_constant(statements, *, no_removed_parameter=True):
    reads = statements.reading_containers()
    assert reads
    for sql, params in reads:
        assert """"observed_state" = 'removed'""" in sql, sql
        assert '"observed_state" = %s' not in sql, sql
        if no_removed_parameter:
            assert "removed" not in params, (sql, params)


def test_api_list_pages_write_the_state_into_the_sql(api, listed):
    client = api("admin")
    statements = _Statements()
    with connection.execute_wrapper(statements):
        for query in ("", "?page_size=10", "?page_size=1&page=2", "?ordering=-name"):
            answer = client.get(f"/api/v1/containers/{query}")
            assert answer.status_code == 200, answer.content
    _assert_state_is_constant(statements)
    assert [r["name"] for r in client.get("/api/v1/containers/").json()["results"]] == [
        "lf-a",
        "lf-b",
    ]
    removed = client.get("/api/v1/containers/?state=removed").json()["results"]
    assert [r["name"] for r in removed] == ["lf-gone"]


def test_docker_list_writes_the_state_into_the_sql(users, listed):
    _, secret = ApiToken.issue(users["admin"], "lf-docker")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    statements = _Statements()
    with connection.execute_wrapper(statements):
        answer = client.get("/v1.47/containers/json?all=1")
    assert answer.status_code == 200, answer.content
    _assert_state_is_constant(statements)
    assert sorted(c["Names"][0] for c in answer.json()) == ["/lf-a", "/lf-b"]


def test_live_rows_are_the_not_removed_ones(listed):
    assert sorted(Container.objects.filter(NOT_REMOVED).values_list("name", flat=True)) == [
        "lf-a",
        "lf-b",
    ]
    assert list(Container.objects.exclude(NOT_REMOVED).values_list("name", flat=True)) == [
        "lf-gone"
    ]


@pytest.mark.parametrize("text", ["", "Removed", "x'y", "a b", "removed--", "a" * 33, "é"])
def test_only_plain_words_become_sql_text(text):
    with pytest.raises(ValueError, match="not a fixed SQL text"):
        FixedText(text)


def test_quota_usage_writes_the_state_into_the_sql(teams, listed):
    """The create's quota check (containers/quotas.py) runs on every create: its count of the
    team's live containers is kept compiled too."""
    from containers.quotas import usage

    statements = _Statements()
    with connection.execute_wrapper(statements):
        used = usage(teams["alpha"])
    # ("removed" is bound for desired_state, a column outside the partial index's condition.)
    _assert_state_is_constant(statements, no_removed_parameter=False)
    assert used["containers"] == 1  # lf-a; lf-gone is removed
