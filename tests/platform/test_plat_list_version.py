"""The container list's version token (containers/list_version.py): database triggers replace
it on every write to what the list shows, and the API list answers a page again from its
rendered rows only while the token stays the same, so no write is ever missed."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from containers import list_version
from containers.api import listing
from containers.models import Container
from health.models import ContainerHealth
from tests.platform.factories import make_container

pytestmark = pytest.mark.django_db

URL = "/api/v1/containers/?page_size=10"


def _token():
    connection.ensure_connection()
    return list_version.current(connection)


def _page(client):
    """(names and states of the page, whether its rows were read from the database)."""
    with CaptureQueriesContext(connection) as ctx:
        answer = client.get(URL)
    assert answer.status_code == 200, answer.content
    read = any('FROM "containers_container"' in q["sql"] for q in ctx.captured_queries)
    rows = [(r["name"], r["observed_state"], r["host_name"]) for r in answer.json()["results"]]
    return rows, read


@pytest.fixture(autouse=True)
def _no_kept_pages():
    listing.PAGES.pages.clear()
    yield
    listing.PAGES.pages.clear()


def test_every_watched_write_replaces_the_token(teams, host):
    if connection.vendor != "sqlite":
        pytest.skip("the triggers are SQLite's")
    seen = [_token()]
    assert seen[0]

    def changed():
        seen.append(_token())
        return seen[-1] not in seen[:-1]

    c = make_container(teams["alpha"], host, "tv-a")
    assert changed()
    Container.objects.filter(pk=c.pk).update(observed_state="running")
    assert changed()
    ContainerHealth.objects.create(container=c, status="healthy")
    assert changed()
    ContainerHealth.objects.filter(container=c).update(failing_streak=2)
    assert changed()
    teams["alpha"].name = "tv-renamed"
    teams["alpha"].save(update_fields=["name"])
    assert changed()
    host.name = "tv-host-renamed"
    host.save(update_fields=["name"])
    assert changed()
    with connection.cursor() as cursor:  # a write behind the ORM's back too
        cursor.execute('UPDATE "containers_container" SET "error" = %s WHERE id = %s', ["x", c.pk])
    assert changed()
    Container.objects.filter(pk=c.pk).delete()
    assert changed()
    # What the list does not show of a host (its heartbeat) leaves the token as it is.
    before = _token()
    type(host).objects.filter(pk=host.pk).update(state=host.State.UP)
    assert _token() == before


def test_the_list_is_answered_again_only_while_nothing_changed(api, teams, host):
    if connection.vendor != "sqlite":
        pytest.skip("the page cache is SQLite's")
    c = make_container(teams["alpha"], host, "tv-a", observed_state="created")
    client = api("admin")
    first, read = _page(client)
    assert read and first == [("tv-a", "created", host.name)]
    again, read = _page(client)
    assert again == first and not read, "an unchanged page read its rows again"
    Container.objects.filter(pk=c.pk).update(observed_state="running")
    rows, read = _page(client)
    assert read and rows == [("tv-a", "running", host.name)]
    type(host).objects.filter(pk=host.pk).update(name="tv-h2")
    rows, read = _page(client)
    assert read and rows == [("tv-a", "running", "tv-h2")]
    make_container(teams["beta"], host, "tv-b")
    rows, _ = _page(client)
    assert [r[0] for r in rows] == ["tv-a", "tv-b"]


def test_each_user_gets_the_page_they_may_see(api, teams, host, users):
    if connection.vendor != "sqlite":
        pytest.skip("the page cache is SQLite's")
    make_container(teams["alpha"], host, "tv-a")
    make_container(teams["beta"], host, "tv-b")
    admin, developer = api("admin"), api("developer")
    for _ in range(2):
        assert [r[0] for r in _page(admin)[0]] == ["tv-a", "tv-b"]
        assert [r[0] for r in _page(developer)[0]] == ["tv-a"]  # alpha's only


def test_without_every_trigger_there_is_no_token_and_no_kept_page(api, teams, host):
    if connection.vendor != "sqlite":
        pytest.skip("the triggers are SQLite's")
    make_container(teams["alpha"], host, "tv-a")
    client = api("admin")
    with connection.cursor() as cursor:
        cursor.execute(list_version.drop_statements()[0])
    assert _token() is None
    for _ in range(2):
        rows, read = _page(client)
        assert read and [r[0] for r in rows] == ["tv-a"]
    assert listing.PAGES.pages == {}


def test_a_schema_change_rolled_back_does_not_vouch_for_the_next(teams, host):
    """A rolled-back schema change gives its schema version number again to the next one: the
    triggers are counted with every token, never remembered by that number."""
    from django.db import transaction

    if connection.vendor != "sqlite":
        pytest.skip("the triggers are SQLite's")
    with pytest.raises(RuntimeError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute('CREATE TABLE "tv_other" (x integer)')
        assert _token() is not None  # every trigger in place at that schema
        raise RuntimeError("rolled back")
    with connection.cursor() as cursor:
        cursor.execute(list_version.drop_statements()[0])
    assert _token() is None


def test_hostile_page_numbers_are_invalid_pages_not_errors(api, teams, host):
    """A page number whose row offset no SQL integer holds (or too long to be a number at all)
    is answered as a page past the end, never by asking the database for that offset."""
    make_container(teams["alpha"], host, "tv-a")
    client = api("admin")
    for query in (
        "page=" + "9" * 40,
        "page=" + "9" * 5000,
        "page=99999999999999999&page_size=1000",
    ):
        answer = client.get(f"/api/v1/containers/?{query}")
        assert answer.status_code == 404, (query[:40], answer.status_code, answer.content[:200])
        assert answer.json()["error"]["message"] == "Invalid page."
    assert client.get("/api/v1/containers/?page=1").status_code == 200
