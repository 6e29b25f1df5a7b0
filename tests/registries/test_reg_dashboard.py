"""The dashboard's pull form and progress page, through the same gate and services as the API."""

import pytest
from django.test import Client

from audit.models import AuditEvent
from operations.models import Operation

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(users, broker, host):
    """browser("developer") -> a Django test client signed in as that user."""

    def make(name):
        client = Client()
        client.force_login(users[name])
        return client

    return make


def test_developer_pulls_from_the_dashboard_and_sees_the_progress_page(browser, host, teams):
    client = browser("developer")
    page = client.get("/images/pull/")
    assert page.status_code == 200 and b'id="image-pull"' in page.content
    assert b"tr-alpha" in page.content and b"tr-beta" not in page.content
    response = client.post(
        "/images/pull/",
        {"ref": "registry.example.com:5000/tr/app:1", "host": host.pk, "team": teams["alpha"].pk},
    )
    op = Operation.objects.get()
    assert response.status_code == 302 and response.url == f"/operations/{op.pk}/progress/"
    assert op.kind == "image.pull" and op.team == teams["alpha"]
    event = AuditEvent.objects.get(action="image.pull", outcome="allowed", operation_id=op.pk)
    assert event.summary["via"] == "dashboard"
    progress = client.get(response.url)
    assert progress.status_code == 200
    assert f"/api/v1/operations/{op.pk}/progress/".encode() in progress.content
    assert b"registries/progress.js" in progress.content
    assert b'id="image-pull-link"' in client.get("/images/").content


def test_viewer_may_not_pull_and_foreign_progress_is_hidden(browser, host, teams):
    assert browser("viewer").get("/images/pull/").status_code == 403
    response = browser("viewer").post("/images/pull/", {"ref": "busybox", "host": host.pk})
    assert response.status_code in (302, 403)
    assert not Operation.objects.exists()
    other = Operation.objects.create(
        kind="image.pull", target_type="image", host=host, team=teams["beta"]
    )
    assert browser("developer").get(f"/operations/{other.pk}/progress/").status_code == 404


def test_a_bad_reference_is_refused_on_the_form(browser, host, teams):
    client = browser("developer")
    response = client.post(
        "/images/pull/", {"ref": "no spaces allowed", "host": host.pk, "team": teams["alpha"].pk}
    )
    assert response.status_code in (302, 400)
    assert not Operation.objects.exists()
