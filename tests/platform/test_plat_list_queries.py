"""The container list reads tuples, not instances (containers/api/views.py): the same rows, the
same visibility, filters, ordering and pages as the generic serializer, and one gate decision
with a fixed number of queries per request whoever asks and however many rows there are."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from containers.api import listing
from containers.api.serializers import ContainerSerializer
from containers.models import Container
from health.models import ContainerHealth
from tests.platform.factories import make_container

pytestmark = pytest.mark.django_db
URL = "/api/v1/containers/"


def _rows(client, query="") -> list[dict]:
    answer = client.get(f"{URL}?page_size=500{query}")
    assert answer.status_code == 200, answer.content
    return answer.json()["results"]


def _expected(queryset) -> list[dict]:
    """What the generic serializer says of these rows, without the spec."""
    rows = queryset.select_related("team", "host").order_by("name")
    return [{k: v for k, v in ContainerSerializer(c).data.items() if k != "spec"} for c in rows]


@pytest.fixture
def many(teams, host):
    """Six containers in two teams, in several states, some with observations."""
    made = [
        make_container(teams["alpha" if i % 2 else "beta"], host, f"tq-{i}", labels={"n": str(i)})
        for i in range(6)
    ]
    Container.objects.filter(pk=made[1].pk).update(
        observed_state="stopped", exit_code=3, observed_at=timezone.now(), network_info={"p": [1]}
    )
    make_container(teams["alpha"], host, "tq-gone", observed_state="removed")
    ContainerHealth.objects.create(
        container=made[2], status="unhealthy", failing_streak=2, log=[{"exit_code": 1}]
    )
    return made


def test_rows_equal_the_generic_serializer_for_each_visibility(api, teams, many):
    live = Container.objects.exclude(observed_state="removed")
    assert _rows(api("admin")) == _expected(live)
    assert _rows(api("developer")) == _expected(live.filter(team=teams["alpha"]))
    assert _rows(api("viewer")) == _expected(live)
    assert api("rando").get(URL).status_code == 403
    removed = _rows(api("developer"), "&state=removed")
    assert [r["name"] for r in removed] == ["tq-gone"]


def test_filters_ordering_search_and_pages_still_apply(api, many):
    client = api("admin")
    assert [r["name"] for r in _rows(client, "&ordering=-name")][:2] == ["tq-5", "tq-4"]
    assert [r["name"] for r in _rows(client, "&label=n=3")] == ["tq-3"]
    assert [r["name"] for r in _rows(client, "&search=tq-2")] == ["tq-2"]
    assert [r["name"] for r in _rows(client, "&state=stopped")] == ["tq-1"]
    page = client.get(f"{URL}?page_size=2&page=2").json()
    assert page["count"] == 6 and [r["name"] for r in page["results"]] == ["tq-2", "tq-3"]


@override_settings(TIME_ZONE="Europe/Paris")
def test_rows_follow_another_time_zone(api, many):
    rows = _rows(api("admin"))
    assert rows == _expected(Container.objects.exclude(observed_state="removed"))
    assert rows[0]["created_at"].endswith("+01:00") or rows[0]["created_at"].endswith("+02:00")


def test_one_decision_and_fixed_queries_per_request(api, teams, host, many):
    def measure(name) -> int:
        client = api(name)
        client.get(URL)  # session and caches warm
        before = AuditEvent.objects.count()
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(f"{URL}?page_size=500").status_code == 200
        assert AuditEvent.objects.count() == before + 1  # one decision, audited
        return len(ctx.captured_queries)

    few = {name: measure(name) for name in ("admin", "developer")}
    for i in range(30):
        make_container(teams["alpha"], host, f"tq-more-{i}")
    assert {name: measure(name) for name in ("admin", "developer")} == few


def test_pages_answer_as_before_with_the_total_from_the_same_query(api, many):
    client = api("admin")
    with CaptureQueriesContext(connection) as ctx:
        page = client.get(f"{URL}?page_size=4&page=2").json()
    assert page["count"] == 6 and [r["name"] for r in page["results"]] == ["tq-4", "tq-5"]
    assert page["next"] is None and page["previous"].endswith("page_size=4")
    assert not any(
        "COUNT(*) AS" in q["sql"] and "OVER" not in q["sql"] for q in ctx.captured_queries
    )
    first = client.get(f"{URL}?page_size=4").json()
    assert first["count"] == 6 and len(first["results"]) == 4 and "page=2" in first["next"]
    assert client.get(f"{URL}?page=last&page_size=4").json()["results"] == page["results"]
    for bad in ("3&page_size=4", "0", "x", "٢"):  # past the end, zero, not a number
        answer = client.get(f"{URL}?page={bad}")
        assert answer.status_code == 404, (bad, answer.content)
    empty = client.get(f"{URL}?state=paused").json()
    assert empty == {"count": 0, "next": None, "previous": None, "results": []}


def test_rendered_rows_are_never_stale(api, teams, host, many):
    """List rows are kept rendered by the values the database sent (listing.ROW_CACHE): a
    change to any shown value, however it is written (queryset updates send no signal), a
    renamed team or host, a health change, shows in the next answer."""
    client = api("admin")
    live = Container.objects.exclude(observed_state="removed")
    assert _rows(client) == _expected(live)
    assert client.get(URL).json()["results"] == _expected(live)[:50]  # the compiled page
    Container.objects.filter(pk=many[0].pk).update(
        observed_state="paused", labels={"n": "changed"}, network_info={"ip": "10.0.0.9"}
    )
    ContainerHealth.objects.filter(container=many[2]).update(status="healthy", failing_streak=0)
    teams["alpha"].__class__.objects.filter(pk=teams["alpha"].pk).update(name="alpha-renamed")
    host.__class__.objects.filter(pk=host.pk).update(name="renamed-host")
    expected = _expected(live)
    assert client.get(URL).json()["results"] == expected
    assert _rows(client) == expected
    changed = {r["name"]: r for r in expected}
    assert changed["tq-0"]["observed_state"] == "paused"
    assert changed["tq-0"]["labels"] == {"n": "changed"}
    assert changed["tq-2"]["health"]["status"] == "healthy"
    assert changed["tq-1"]["team_name"] == "alpha-renamed"
    assert changed["tq-1"]["host_name"] == "renamed-host"


def test_kept_rows_parse_no_date_time_again(api, many, monkeypatch):
    """The compiled page reads date-times as text (SQLite's stored text, PostgreSQL's output)
    and parses them only for rows the row cache has not rendered: a second read of an
    unchanged page parses none; a changed date-time is parsed for its row alone and shown."""
    parsed = []
    real = listing._time_parser

    def counting(connection):
        parse = real(connection)

        def counted(text):
            parsed.append(text)
            return parse(text)

        return counted

    monkeypatch.setattr(listing, "_time_parser", counting)
    listing.ROW_CACHE.rows.clear()
    client = api("admin")
    first = client.get(URL).json()["results"]
    assert parsed and all(isinstance(text, str) for text in parsed)
    parsed.clear()
    assert client.get(URL).json()["results"] == first
    assert parsed == []
    Container.objects.filter(pk=many[0].pk).update(
        observed_at=timezone.now() + timedelta(minutes=5)
    )
    live = Container.objects.exclude(observed_state="removed")
    assert client.get(URL).json()["results"] == _expected(live)
    assert 1 <= len(parsed) <= 4  # the changed row's date-times only
