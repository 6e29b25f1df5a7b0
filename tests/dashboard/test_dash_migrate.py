"""The container page's Migrate panel: shown with container.migrate only, eligible hosts only,
the server re-checks (a refused POST changes nothing), and the progress fragment lists steps."""

import time

import pytest
from dash_helpers import make_container

from audit.models import AuditEvent
from hosts.models import Host
from operations.models import Operation


@pytest.fixture
def hosts(db, host):
    """The container's host plus: an up one, a cordoned one and a down one."""
    return {
        "up": Host.objects.create(name="td-h2", state=Host.State.UP),
        "cordoned": Host.objects.create(name="td-h3", state=Host.State.UP, cordoned=True),
        "down": Host.objects.create(name="td-h4", state=Host.State.DOWN),
    }


@pytest.fixture
def web(teams, host):
    return make_container(
        teams["alpha"], host, "td-mig", observed_state="running", desired_state="running"
    )


def test_an_operator_sees_the_panel_with_eligible_hosts_only(login, web, hosts):
    page = login("operator").get(f"/containers/{web.pk}/").content.decode()
    assert 'id="migrate-form"' in page and "berth/migrate.js" in page
    assert '<option value="td-h2">' in page
    assert "td-h3" not in page and "td-h4" not in page  # cordoned, down
    assert web.host.name not in page.split('id="migrate-form"')[1].split("</form>")[0]


def test_a_developer_without_the_permission_gets_no_panel_and_a_refusal(login, web, hosts):
    client = login("developer")
    page = client.get(f"/containers/{web.pk}/").content.decode()
    assert 'id="migrate-panel"' not in page and "migrate.js" not in page
    response = client.post(f"/containers/{web.pk}/migrate/", {"host": "td-h2"})
    assert response.status_code in (403, 404)
    web.refresh_from_db()
    assert web.host.name == "td-h1" and not Operation.objects.exists()


def test_the_server_rechecks_a_down_host(login, web, hosts):
    client = login("operator")
    response = client.post(f"/containers/{web.pk}/migrate/", {"host": "td-h4"}, follow=True)
    assert response.status_code == 200
    assert "is down" in response.content.decode() or "does not answer" in response.content.decode()
    web.refresh_from_db()
    assert web.host.name == "td-h1" and not Operation.objects.exists()
    assert AuditEvent.objects.filter(action="container.migrate").exists()
    response = client.post(
        f"/containers/{web.pk}/migrate/",
        {"host": "nosuch"},
        HTTP_REFERER=f"/containers/{web.pk}/",
        follow=True,
    )
    assert "no host &#x27;nosuch&#x27;" in response.content.decode()
    assert not Operation.objects.exists()


def test_the_form_offers_the_modes_and_refuses_an_unknown_one(login, web, hosts):
    client = login("operator")
    page = client.get(f"/containers/{web.pk}/").content.decode()
    assert 'name="mode"' in page and 'value="postcopy"' in page
    response = client.post(
        f"/containers/{web.pk}/migrate/",
        {"host": "td-h2", "mode": "teleport"},
        HTTP_REFERER=f"/containers/{web.pk}/",
        follow=True,
    )
    assert "unknown migration mode &#x27;teleport&#x27;" in response.content.decode()
    web.refresh_from_db()
    assert web.host.name == "td-h1" and not Operation.objects.exists()


def test_the_progress_fragment_lists_the_migrations_steps(login, web, hosts, teams):
    since = time.time()
    Operation.objects.create(
        kind="checkpoint.receive",
        target_type="container",
        target_id=str(web.pk),
        host=hosts["up"],
        team=teams["alpha"],
        state="running",
    )
    html = login("operator").get(f"/containers/{web.pk}/migrate/progress/?since={since}")
    text = html.content.decode()
    assert "target ready to receive" in text and "td-h2" in text and "running" in text
    bad = login("operator").get(f"/containers/{web.pk}/migrate/progress/?since=x")
    assert bad.status_code == 400
