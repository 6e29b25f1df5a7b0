"""What each named user sees and may press in the dashboard; forged POSTs are refused and audited."""

import re

import pytest
from dash_helpers import make_container

from audit.models import AuditEvent
from containers.models import Container
from operations.models import Operation

pytestmark = pytest.mark.django_db

ADMIN_PAGES = ("/manage/users/", "/manage/roles/", "/manage/bindings/", "/manage/audit/")


def nav_labels(response) -> list[str]:
    nav = response.content.decode().split('<nav class="side"', 1)[1].split("</nav>", 1)[0]
    return re.findall(r'<a href="[^"]+"(?: class="active")?>([^<]+)</a>', nav)


@pytest.mark.parametrize(
    ("who", "shown", "hidden"),
    [
        ("admin", {"Containers", "Roles", "Audit log", "Users", "Hosts"}, set()),
        ("viewer", {"Containers", "Images", "Hosts"}, {"Roles", "Audit log", "Users", "Bindings"}),
        ("developer", {"Containers", "Networks", "API tokens"}, {"Roles", "Audit log", "Users"}),
        ("auditor", {"Audit log"}, {"Roles", "Users"}),
        ("rando", {"Dashboard"}, {"Containers", "Images", "Roles", "API tokens"}),
    ],
)
def test_navigation_shows_only_what_the_gate_allows(login, who, shown, hidden):
    labels = set(nav_labels(login(who).get("/")))
    assert shown <= labels, labels
    assert not hidden & labels, labels


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_admin_pages_refuse_others(login, path):
    assert login("admin").get(path).status_code == 200
    response = login("developer").get(path)
    assert response.status_code == 403
    assert AuditEvent.objects.filter(actor="td-developer", outcome="denied").exists()


def test_viewer_sees_no_action_buttons(login, containers):
    c = containers["alpha"]
    page = login("viewer").get(f"/containers/{c.pk}/").content.decode()
    assert c.name in page
    assert "data-action=" not in page and "Terminal" not in page
    listing = login("viewer").get("/containers/").content.decode()
    assert "Remove selected" not in listing and "New container" not in listing
    # The operator sees them.
    page = login("operator").get(f"/containers/{c.pk}/").content.decode()
    assert 'data-action="stop"' in page and "Terminal" in page


def test_forged_post_from_a_viewer_is_refused_and_audited(login, containers):
    c = containers["alpha"]
    client = login("viewer")
    for verb in ("stop", "remove"):
        response = client.post(f"/containers/{c.pk}/action/", {"action": verb})
        assert response.status_code == 403
    c.refresh_from_db()
    assert c.desired_state == "running"
    assert not Operation.objects.exists()
    denied = AuditEvent.objects.filter(actor="td-viewer", action="container.stop", outcome="denied")
    assert denied.count() == 1 and denied.first().object_id == str(c.pk)
    response = client.post("/containers/bulk/", {"action": "remove", "ids": [c.pk]})
    assert response.status_code == 302
    assert not Operation.objects.exists()
    assert AuditEvent.objects.filter(
        actor="td-viewer", action="container.delete", outcome="denied"
    ).exists()


def test_other_teams_container_is_404_and_audited(login, containers):
    beta = containers["beta"]
    client = login("developer")
    for path in (
        f"/containers/{beta.pk}/",
        f"/containers/{beta.pk}/logs/",
        f"/containers/{beta.pk}/terminal/",
    ):
        assert client.get(path).status_code == 404, path
    assert client.post(f"/containers/{beta.pk}/action/", {"action": "stop"}).status_code == 404
    assert (
        AuditEvent.objects.filter(
            actor="td-developer", object_id=str(beta.pk), outcome="denied"
        ).count()
        >= 4
    )
    # A missing id looks the same as a hidden one.
    assert client.get("/containers/999999/").status_code == 404


def test_operator_action_queues_an_operation(login, containers):
    c = containers["alpha"]
    response = login("operator").post(f"/containers/{c.pk}/action/", {"action": "stop"})
    assert response.status_code == 302
    c.refresh_from_db()
    assert c.desired_state == "stopped"
    op = Operation.objects.get()
    assert op.kind == "container.stop" and op.target_id == str(c.pk) and op.state == "pending"
    event = AuditEvent.objects.get(action="container.stop", outcome="allowed")
    assert event.operation_id == op.pk and event.actor == "td-operator"


def test_bulk_actions_touch_only_visible_containers(login, teams, host, containers):
    mine = [
        make_container(teams["alpha"], host, f"td-bulk-{i}", observed_state="stopped")
        for i in range(3)
    ]
    ids = [c.pk for c in mine] + [containers["beta"].pk]
    response = login("developer").post("/containers/bulk/", {"action": "start", "ids": ids})
    assert response.status_code == 302
    started = set(
        Operation.objects.filter(kind="container.start").values_list("target_id", flat=True)
    )
    assert started == {str(c.pk) for c in mine}
    assert Container.objects.get(pk=containers["beta"].pk).desired_state == "stopped"


def test_unknown_action_is_refused(login, containers):
    response = login("admin").post(
        f"/containers/{containers['alpha'].pk}/action/", {"action": "explode"}
    )
    assert response.status_code == 302
    assert not Operation.objects.exists()


def test_polled_reads_are_decided_each_time_and_audited_once_a_minute(
    login, containers, monkeypatch
):
    from operations import dispatch

    calls = []

    def fake_host(host, task, args, timeout=None, decision=None):
        # Stands in for the host agent's answer; the real one is driven in tests/browser.
        calls.append(task)
        return {"lines": [["stdout", "2026-01-01T00:00:00Z", "hello <b>\n"]]}

    monkeypatch.setattr(dispatch, "call_host", fake_host)
    c = containers["alpha"]
    client = login("viewer")
    for _ in range(3):
        response = client.get(f"/containers/{c.pk}/logs/?tail=5", HTTP_HX_REQUEST="true")
        assert response.status_code == 200
        assert "hello &lt;b&gt;" in response.content.decode()  # escaped, never HTML
    assert calls == ["agent.container_logs"] * 3
    events = AuditEvent.objects.filter(
        actor="td-viewer", action="container.logs", object_id=str(c.pk)
    )
    assert events.count() == 1 and events.first().outcome == "allowed"
    download = client.get(f"/containers/{c.pk}/logs/download/")
    assert download["Content-Disposition"] == 'attachment; filename="td-web-a.log"'
    assert b"stdout hello <b>" in download.content
    # Someone without container.logs is refused, and every refusal is audited.
    assert login("developer").get(f"/containers/{containers['beta'].pk}/logs/").status_code == 404
    assert login("rando").get(f"/containers/{c.pk}/logs/").status_code == 404
    assert len(calls) == 4


def test_stats_and_processes_of_a_running_container(login, containers, monkeypatch):
    from operations import dispatch

    answers = {
        "agent.container_stats": {"cpu_usage_ns": 5, "memory_usage": 1048576, "pids_current": 1},
        "agent.container_top": {
            "titles": ["UID", "PID", "CMD"],
            "processes": [["root", "42", "sleep 1000"]],
        },
    }
    monkeypatch.setattr(
        dispatch, "call_host", lambda host, task, args, timeout=None, decision=None: answers[task]
    )
    c = containers["alpha"]
    client = login("viewer")
    stats = client.get(f"/containers/{c.pk}/stats/", HTTP_X_BERTH_POLL="1").json()
    assert stats == {"running": True, "cpu_usage_ns": 5, "memory_usage": 1048576, "pids_current": 1}
    top = client.get(f"/containers/{c.pk}/top/", HTTP_HX_REQUEST="true").content.decode()
    assert "sleep 1000" in top and "<th>PID</th>" in top
    # A stopped container is not asked at all.
    assert client.get(f"/containers/{containers['beta'].pk}/stats/").json() == {"running": False}
