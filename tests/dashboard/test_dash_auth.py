"""Login, logout, CSRF and the lockout after repeated failures."""

import pytest
from dash_helpers import PASSWORD
from django.test import Client, override_settings

from audit.models import AuditEvent
from dashboard.models import LoginFailure

pytestmark = pytest.mark.django_db


def test_pages_need_a_login(users):
    for path in ("/", "/containers/", "/manage/audit/", "/containers/1/"):
        response = Client().get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/?next=")


def test_login_and_logout(users):
    client = Client()
    response = client.post(
        "/login/", {"username": "td-viewer", "password": PASSWORD, "next": "/containers/"}
    )
    assert response.status_code == 302 and response["Location"] == "/containers/"
    assert client.get("/").status_code == 200
    assert AuditEvent.objects.filter(
        action="auth.login", outcome="allowed", actor="td-viewer"
    ).exists()
    # Logout is POST only, so a link or an image elsewhere cannot log anyone out.
    assert client.get("/logout/").status_code == 405
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_login_refuses_an_offsite_next(users):
    client = Client()
    response = client.post(
        "/login/", {"username": "td-viewer", "password": PASSWORD, "next": "https://evil.example/"}
    )
    assert response["Location"] == "/"


def test_login_needs_the_csrf_token(users):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/login/", {"username": "td-viewer", "password": PASSWORD})
    assert response.status_code == 403
    page = client.get("/login/")
    token = page.cookies["csrftoken"].value
    response = client.post(
        "/login/", {"username": "td-viewer", "password": PASSWORD, "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302


def test_wrong_password_is_refused_and_audited(users):
    response = Client().post("/login/", {"username": "td-viewer", "password": "nope"})
    assert response.status_code == 401
    assert b"Wrong username or password" in response.content
    assert LoginFailure.objects.filter(username="td-viewer").count() == 1
    event = AuditEvent.objects.filter(action="auth.login").first()
    assert event.outcome == "denied" and event.reason == "bad credentials"


@override_settings(BERTH_LOGIN_MAX_FAILURES=3)
def test_lockout_after_repeated_failures(users):
    client = Client()
    for _ in range(3):
        assert (
            client.post("/login/", {"username": "TD-Viewer", "password": "guess"}).status_code
            == 401
        )
    # Locked: even the right password is refused, before it is checked.
    response = client.post("/login/", {"username": "td-viewer", "password": PASSWORD})
    assert response.status_code == 429
    assert b"Too many failed logins" in response.content
    assert AuditEvent.objects.filter(action="auth.login", reason="locked out").exists()
    # Another user is not locked by someone else's failures.
    assert client.post("/login/", {"username": "td-admin", "password": PASSWORD}).status_code == 302


@override_settings(BERTH_LOGIN_MAX_FAILURES=3, BERTH_LOGIN_LOCKOUT_SECONDS=60)
def test_lockout_expires(users):
    from datetime import timedelta

    from django.utils import timezone

    client = Client()
    for _ in range(3):
        client.post("/login/", {"username": "td-viewer", "password": "guess"})
    assert (
        client.post("/login/", {"username": "td-viewer", "password": PASSWORD}).status_code == 429
    )
    LoginFailure.objects.update(failed_at=timezone.now() - timedelta(seconds=120))
    assert (
        client.post("/login/", {"username": "td-viewer", "password": PASSWORD}).status_code == 302
    )
    assert not LoginFailure.objects.filter(username="td-viewer").exists()


@override_settings(BERTH_LOGIN_MAX_FAILURES=100, BERTH_LOGIN_MAX_FAILURES_PER_ADDRESS=4)
def test_one_address_spraying_many_users_is_locked(users):
    client = Client()
    for name in ("a", "b", "c", "d"):
        client.post("/login/", {"username": f"td-{name}", "password": "guess"})
    assert (
        client.post("/login/", {"username": "td-viewer", "password": PASSWORD}).status_code == 429
    )
