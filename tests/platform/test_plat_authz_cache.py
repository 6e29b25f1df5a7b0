"""Token lookups and grants are cached across requests (rbac/generation.py), and every change to
who may do what takes effect at the very next request: a revoked token, a deactivated user, a
removed binding or membership. The generation they are cached under is a database row."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.models import ApiToken, Membership
from audit.models import AuditEvent
from rbac.models import Role, RoleBinding
from tests.platform.factories import make_container

pytestmark = pytest.mark.django_db

URL = "/api/v1/containers/"


def _client(user, **issue):
    _, secret = ApiToken.issue(user, "tp-cache", **issue)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _get(client, url=URL):
    """(status, the SQL of the request)."""
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    return response.status_code, " ".join(q["sql"] for q in ctx.captured_queries)


def test_token_and_grants_read_once_then_cached(users):
    client = _client(users["viewer"])
    status, sql = _get(client)
    assert status == 200 and "accounts_apitoken" in sql and "rbac_rolebinding" in sql
    status, sql = _get(client)
    assert status == 200
    assert "accounts_apitoken" not in sql and "rbac_rolebinding" not in sql
    # Still decided by the gate and audited, request by request (the append's SQL is not
    # among the captured queries: on SQLite it goes through the driver's own connection).
    before = AuditEvent.objects.count()
    status, sql = _get(client)
    assert status == 200
    last = AuditEvent.objects.order_by("-seq").first()
    assert AuditEvent.objects.count() == before + 1
    assert (last.actor, last.action, last.outcome) == ("viewer", "container.view", "allowed")


def test_revoked_token_refused_at_the_next_request(users):
    client = _client(users["developer"])
    assert _get(client)[0] == 200 and _get(client)[0] == 200  # cached now
    token = ApiToken.objects.get(user=users["developer"], name="tp-cache")
    # Revocation the way the API and the dashboard do it: a queryset update, no signal.
    assert client.delete(f"/api/v1/tokens/{token.pk}/").status_code == 204
    response = client.get(URL)
    assert response.status_code == 401 and "revoked" in response.json()["error"]["message"]


def test_deactivated_user_refused_at_the_next_request(users):
    client = _client(users["operator"])
    assert _get(client)[0] == 200 and _get(client)[0] == 200
    users["operator"].is_active = False
    users["operator"].save()
    response = client.get(URL)
    assert response.status_code == 401 and "inactive" in response.json()["error"]["message"]


def test_removed_binding_and_membership_apply_at_the_next_request(users, teams, host):
    make_container(teams["alpha"], host, "tp-cache-a")
    viewer = _client(users["viewer"])
    assert _get(viewer)[0] == 200 and _get(viewer)[0] == 200
    RoleBinding.objects.filter(user=users["viewer"]).delete()
    assert viewer.get(URL).status_code == 403

    # Bound to team alpha (not to the developer): held through the membership, and gone
    # with it.
    developer = users["developer"]
    RoleBinding.objects.filter(user=developer).delete()
    developer_role = Role.objects.get(name="developer")
    RoleBinding.objects.create(team=teams["alpha"], role=developer_role, scope_team=teams["alpha"])
    client = _client(developer)
    assert [c["name"] for c in client.get(URL).json()["results"]] == ["tp-cache-a"]
    assert client.get(URL).status_code == 200  # cached now
    Membership.objects.filter(user=developer, team=teams["alpha"]).delete()
    assert client.get(URL).status_code == 403


def test_the_cache_needs_no_redis(users, broker_down):
    """The generation is a database row (issue 19: its Redis GET was a fifth of a list)."""
    client = _client(users["viewer"])
    assert _get(client)[0] == 200
    status, sql = _get(client)
    assert status == 200 and "accounts_apitoken" not in sql and "rbac_rolebinding" not in sql


def test_nothing_cached_when_the_generation_cannot_be_read(users, monkeypatch):
    """As for an agent whose PostgreSQL role predates the table: every request reads."""
    from rbac import generation

    monkeypatch.setattr(generation, "_may_read", lambda cursor: False)
    client = _client(users["viewer"])
    for _ in range(2):
        status, sql = _get(client)
        assert status == 200 and "accounts_apitoken" in sql and "rbac_rolebinding" in sql


def test_a_change_writes_a_new_generation_with_it(users):
    """The new generation is part of the change's transaction: gone with its rollback."""
    from django.db import transaction

    from rbac import generation

    before = generation.current()
    with pytest.raises(RuntimeError), transaction.atomic():
        RoleBinding.objects.filter(user=users["viewer"]).delete()
        assert generation.current() not in (None, before)
        raise RuntimeError("rolled back")
    assert generation.current() == before
    RoleBinding.objects.filter(user=users["viewer"]).delete()
    assert generation.current() not in (None, before)


def test_nav_answered_once_and_follows_a_removed_binding(users):
    client = APIClient()
    client.force_login(users["auditor"])
    assert b'href="/manage/audit/"' in client.get("/").content
    status, sql = _get(client, "/")
    assert status == 200 and "rbac_rolebinding" not in sql  # grants and nav answers cached
    RoleBinding.objects.filter(user=users["auditor"]).delete()
    assert b'href="/manage/audit/"' not in client.get("/").content


def test_list_pages_follow_a_new_binding(users, teams, host):
    """The list's SQL is compiled once per shape of the gate's filter (containers/api/
    listing.py): a new team in scope is a new shape, seen at the next request."""
    make_container(teams["alpha"], host, "tp-shape-a")
    make_container(teams["beta"], host, "tp-shape-b")
    client = _client(users["developer"])
    for _ in range(2):
        assert [c["name"] for c in client.get(URL).json()["results"]] == ["tp-shape-a"]
    RoleBinding.objects.create(
        user=users["developer"],
        role=Role.objects.get(name="developer"),
        scope_team=teams["beta"],
    )
    body = client.get(URL + "?page_size=1&page=2").json()
    assert body["count"] == 2 and [c["name"] for c in body["results"]] == ["tp-shape-b"]
    assert client.get(URL + "?page=3&page_size=1").status_code == 404  # past the end, as before


def test_a_revocation_writes_a_new_generation_and_a_last_use_does_not(users):
    """Both queryset updates of tokens; the revocation's generation commits with it."""
    from django.utils import timezone

    from rbac import generation

    _client(users["viewer"])
    tokens = ApiToken.objects.filter(user=users["viewer"], name="tp-cache")
    before = generation.current()
    tokens.update(last_used_at=timezone.now())
    assert generation.current() == before
    with CaptureQueriesContext(connection) as ctx:
        tokens.update(revoked_at=timezone.now())
    assert generation.current() not in (None, before)
    sql = [q["sql"] for q in ctx.captured_queries]
    # One transaction (a savepoint inside the test's own) around the update and the new generation.
    assert any("accounts_apitoken" in s for s in sql) and any(
        "rbac_authzgeneration" in s for s in sql
    )
    assert any("SAVEPOINT" in s for s in sql)


def test_a_generation_table_that_cannot_be_read_caches_nothing(users, caplog):
    """A database without the row's table (not migrated yet): the read through the driver
    fails, the general way reports it, and nothing is cached; the requests still answer."""
    from rbac import generation
    from rbac.models import AuthzGeneration

    if connection.vendor != "sqlite":
        pytest.skip("the driver's own read is SQLite's")
    table = AuthzGeneration._meta.db_table
    client = _client(users["viewer"])
    assert generation.current() is not None
    with connection.cursor() as cursor:
        cursor.execute(f'ALTER TABLE "{table}" RENAME TO "tp_hidden_generation"')
    try:
        assert generation.current() is None
        assert "the generation cannot be read" in caplog.text
        for _ in range(2):
            status, sql = _get(client)
            assert status == 200 and "accounts_apitoken" in sql
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'ALTER TABLE "tp_hidden_generation" RENAME TO "{table}"')
    assert generation.current() is not None
