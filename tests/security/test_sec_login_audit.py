"""Login hardening and audit completeness: fixation, lockout, denied dashboard pages audited."""

import pytest
from django.conf import settings
from django.test import Client, override_settings

from audit.models import AuditEvent
from audit.services import verify_chain
from tests.security.conftest import PASSWORD
from tests.security.routes import routes

pytestmark = pytest.mark.django_db


def test_login_rotates_the_session_key_and_csrf_token(users):
    client = Client()
    client.get("/login/")
    session = client.session
    session["planted"] = "by an attacker"  # a session the attacker fixed before the login
    session.save()
    planted = session.session_key
    client.cookies[settings.SESSION_COOKIE_NAME] = planted
    csrf_before = client.cookies[settings.CSRF_COOKIE_NAME].value
    response = client.post("/login/", {"username": "ts-viewer", "password": PASSWORD})
    assert response.status_code == 302
    assert client.cookies[settings.SESSION_COOKIE_NAME].value != planted
    assert client.cookies[settings.CSRF_COOKIE_NAME].value != csrf_before
    assert "planted" not in client.session or client.session.session_key != planted
    assert AuditEvent.objects.filter(action="auth.login", outcome="allowed").exists()


def test_login_form_refuses_a_post_without_csrf(users):
    response = Client(enforce_csrf_checks=True).post(
        "/login/", {"username": "ts-viewer", "password": PASSWORD}
    )
    assert response.status_code == 403
    assert "_auth_user_id" not in Client().session


@override_settings(BERTH_LOGIN_MAX_FAILURES=3)
def test_lockout_is_audited_and_stops_the_right_password(users):
    client = Client()
    for _ in range(3):
        client.post("/login/", {"username": "ts-admin", "password": "guess-1234"})
    response = client.post("/login/", {"username": " TS-ADMIN ", "password": PASSWORD})
    assert response.status_code == 429
    events = AuditEvent.objects.filter(action="auth.login", object_repr__icontains="ts-admin")
    assert [e.reason for e in events.order_by("seq")] == ["bad credentials"] * 3 + ["locked out"]
    assert all(e.outcome == "denied" for e in events)
    assert client.get("/manage/users/").status_code == 302  # not signed in


def test_every_refused_dashboard_page_is_audited(page, containers):
    """rando opens every gated page: each refusal is one denied event with the dashboard's trace."""
    client = page("rando")
    pk = containers["alpha"].pk
    checked = 0
    for route, path, _, callback in routes(pk):
        action = getattr(callback, "berth_action", None)
        if route.startswith("api/") or action in (None, "signed-in", "public"):
            continue
        before = AuditEvent.objects.filter(outcome="denied").count()
        response = client.get(path)
        if response.status_code == 405:
            continue  # POST-only: covered by the POST walk below
        assert response.status_code in (403, 404), (path, response.status_code)
        new = AuditEvent.objects.filter(outcome="denied").order_by("-seq")
        assert new.count() == before + 1, path
        assert new.first().actor == "ts-rando"
        checked += 1
    assert checked >= 20


def test_every_refused_dashboard_post_is_audited(page, users, containers):
    client = page("viewer")
    body = {"action": "stop", "name": "ts-x", "ref": "busybox", "user": users["rando"].pk}
    pk = containers["alpha"].pk
    checked = 0
    for route, path, _, callback in routes(pk):
        action = getattr(callback, "berth_action", None)
        if route.startswith("api/") or action in (None, "signed-in", "public"):
            continue
        if action.endswith(".view") or action.endswith(".export"):
            continue  # a viewer may read these; a POST there changes nothing
        before = AuditEvent.objects.filter(outcome="denied", actor="ts-viewer").count()
        response = client.post(path, body)
        assert response.status_code in (302, 400, 403, 404, 405), (path, response.status_code)
        if response.status_code != 405:
            after = AuditEvent.objects.filter(outcome="denied", actor="ts-viewer").count()
            assert after > before, path
            checked += 1
    assert checked >= 10
    assert verify_chain() == []
