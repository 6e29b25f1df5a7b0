"""The Stacks page: containers grouped by docker-compose's project label, and the stack's
start, stop and remove, each container through the gate and the audit log."""

import pytest
from dash_helpers import make_container

from audit.models import AuditEvent
from containers.models import Container

pytestmark = pytest.mark.django_db
PROJECT = "com.docker.compose.project"


def _stack(team, host, project, services, state="running"):
    return [
        make_container(
            team,
            host,
            f"{project}_{service}_1",
            labels={PROJECT: project, "com.docker.compose.service": service},
            observed_state=state,
            desired_state=state,
        )  # fmt: skip
        for service in services
    ]


def test_stacks_are_grouped_by_project_and_only_the_visible_ones(login, teams, host):
    _stack(teams["alpha"], host, "tdshop", ["db", "app", "web"])
    _stack(teams["beta"], host, "tdother", ["api"])
    make_container(teams["alpha"], host, "td-loose", observed_state="running")
    html = login("developer").get("/stacks/").content.decode()
    assert 'data-stack="tdshop"' in html and "3 of 3 running" in html
    for name in ("tdshop_db_1", "tdshop_app_1", "tdshop_web_1"):
        assert name in html
    # Another team's stack and containers outside any stack are not shown.
    assert "tdother" not in html and "td-loose" not in html
    assert 'value="stop"' in html and 'value="remove"' in html
    assert 'href="/stacks/"' in html  # the navigation entry


def test_stop_and_remove_a_stack_through_the_gate(login, teams, host, td_broker):
    _stack(teams["alpha"], host, "tdshop", ["db", "app"])
    _stack(teams["alpha"], host, "tdkeep", ["db"])
    client = login("developer")
    response = client.post("/stacks/tdshop/action/", {"action": "stop"})
    assert response.status_code == 302
    states = dict(
        Container.objects.filter(name__startswith="td").values_list("name", "desired_state")
    )
    assert states == {"tdshop_db_1": "stopped", "tdshop_app_1": "stopped", "tdkeep_db_1": "running"}
    stops = AuditEvent.objects.filter(action="container.stop", outcome="allowed")
    assert stops.count() == 2
    assert all(e.summary.get("stack") == "tdshop" for e in stops)
    client.post("/stacks/tdshop/action/", {"action": "remove"})
    assert AuditEvent.objects.filter(action="container.delete", outcome="allowed").count() == 2


def test_a_viewer_sees_stacks_but_each_action_is_refused_and_audited(login, teams, host, td_broker):
    _stack(teams["alpha"], host, "tdshop", ["db", "app"])
    client = login("viewer")
    html = client.get("/stacks/").content.decode()
    assert 'data-stack="tdshop"' in html and 'value="stop"' not in html
    client.post("/stacks/tdshop/action/", {"action": "stop"})
    assert set(Container.objects.values_list("desired_state", flat=True)) == {"running"}
    assert AuditEvent.objects.filter(action="container.stop", outcome="denied").count() == 2


def test_bad_stack_requests(login, teams, host):
    _stack(teams["beta"], host, "tdother", ["api"])
    client = login("developer")
    assert client.post("/stacks/tdother/action/", {"action": "explode"}).status_code == 302
    assert "unknown stack action" in client.get("/stacks/").content.decode()
    # Another team's stack is as absent as one that does not exist.
    response = client.post("/stacks/tdother/action/", {"action": "stop"}, follow=True)
    assert "no stack" in response.content.decode()
    assert Container.objects.get(name="tdother_api_1").desired_state == "running"
    assert client.get("/stacks/tdother/action/").status_code == 405
