"""audit.filtering: the REST API and the dashboard narrow the audit log with one function."""

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from audit.services import record_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged(users):
    """Five events: three container.* (one denied), one image.view, one by the viewer."""
    admin, viewer = users["admin"], users["viewer"]
    for action, outcome, actor in [
        ("container.start", "allowed", admin),
        ("container.stop", "allowed", admin),
        ("container.privileged", "denied", admin),
        ("image.view", "allowed", admin),
        ("container.start", "allowed", viewer),
    ]:
        record_event(actor=actor, action=action, outcome=outcome, object_type="x")


def _api_seqs(api, query):
    response = api("auditor").get(f"/api/v1/audit/?{query}&page_size=500")
    assert response.status_code == 200, response.content
    return sorted(e["seq"] for e in response.json()["results"])


def _dashboard_seqs(users, query):
    client = Client()
    client.force_login(users["auditor"])
    response = client.get(f"/manage/audit/export/?{query}&format=json")
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    return sorted(json.loads(line)["seq"] for line in body.splitlines())


@pytest.mark.parametrize(
    "query, expected",
    [
        ("action=container.start", 2),
        ("action_prefix=container.", 4),
        ("action_prefix=container.&outcome=denied", 1),
        ("actor=viewer&action_prefix=container.", 1),
        ("action_prefix=container.&since={today}", 4),
        ("action_prefix=container.&until={today}", 4),
        ("action_prefix=container.&since={tomorrow}", 0),
        ("action_prefix=container.&until={an_hour_ago}", 0),
    ],
)
def test_api_and_dashboard_select_the_same_events(api, users, logged, query, expected):
    now = timezone.now()
    query = query.format(
        today=now.date().isoformat(),
        tomorrow=(now + timedelta(days=1)).date().isoformat(),
        an_hour_ago=(now - timedelta(hours=1)).replace(tzinfo=None).isoformat(),
    )
    seqs = _api_seqs(api, query)
    assert len(seqs) == expected
    assert _dashboard_seqs(users, query) == seqs


@pytest.mark.parametrize(
    "query", ["since=yesterday", "until=2026-13-01", "outcome=maybe", "operation_id=x"]
)
def test_malformed_filters_are_refused_by_both(api, users, query):
    assert api("auditor").get(f"/api/v1/audit/?{query}").status_code == 400
    client = Client()
    client.force_login(users["auditor"])
    assert client.get(f"/manage/audit/?{query}").status_code == 400
