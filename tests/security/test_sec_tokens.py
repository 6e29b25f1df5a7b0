"""API tokens: read-only tokens write nothing anywhere; secrets never reach the audit log."""

import json

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import ApiToken
from audit.models import AuditEvent
from operations.models import Operation
from tests.security.conftest import PASSWORD
from tests.security.routes import HOST_SIGNED, routes

pytestmark = pytest.mark.django_db


def test_read_only_admin_token_cannot_write_on_any_route(bearer, containers):
    client, _ = bearer("admin", read_only=True)
    pk = containers["alpha"].pk
    before = {c.pk: (c.name, c.desired_state) for c in containers.values()}
    checked = refused = 0
    for route, path, methods, _ in routes(pk):
        if not route.startswith("api/v1/") or route.endswith("^.*$") or route in HOST_SIGNED:
            continue  # host-signed routes take no token at all (tested with the transfers)
        for method in methods:
            if method == "get":
                continue
            response = getattr(client, method)(path, {"name": "ts-x"}, format="json")
            assert response.status_code in (400, 403, 404), (method, path, response.status_code)
            checked += 1
            refused += response.status_code == 403
    assert checked > 40 and refused >= 10
    assert not Operation.objects.exists()
    for container in containers.values():
        container.refresh_from_db()
        assert before[container.pk] == (container.name, container.desired_state)
    denied = AuditEvent.objects.filter(outcome="denied", reason__contains="read-only")
    assert denied.count() == refused  # the admin holds every permission: each 403 is the token
    assert client.get("/api/v1/containers/").status_code == 200  # it still reads


def test_revoked_and_expired_tokens_are_refused_everywhere(bearer, users):
    client, secret = bearer("admin")
    token = ApiToken.objects.get(user=users["admin"])
    assert client.get("/api/v1/users/").status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    assert client.get("/api/v1/users/").status_code == 401
    assert client.post("/api/v1/teams/", {"name": "ts-t"}, format="json").status_code == 401
    ApiToken.objects.filter(pk=token.pk).update(
        revoked_at=None, expires_at=timezone.now() - timezone.timedelta(seconds=1)
    )
    assert client.get("/api/v1/users/").status_code == 401


def test_a_token_does_not_open_the_dashboard(bearer):
    _, secret = bearer("admin")
    page = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    response = page.get("/manage/users/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert page.post("/manage/teams/new/", {"name": "ts-t"}).status_code in (302, 403)


def test_no_secret_reaches_the_audit_log(api, bearer, users, host, teams):
    admin = api("admin")
    registry_password = "ts-registry-secret-Zq81"
    response = admin.post(
        "/api/v1/registries/",
        {"name": "ts-reg", "address": "registry.example.com:5000", "username": "u"}
        | {"password": registry_password},
        format="json",
    )
    assert response.status_code == 201, response.content
    registry = response.json()["id"]
    changed_password = "ts-registry-secret-2-Kp02"
    response = admin.patch(
        f"/api/v1/registries/{registry}/", {"password": changed_password}, format="json"
    )
    assert response.status_code == 200
    response = admin.post("/api/v1/tokens/", {"name": "ts-ci"}, format="json")
    token_secret = response.json()["token"]
    user_password = "ts-new-user-password-Wx5"
    response = admin.post(
        "/api/v1/users/", {"username": "ts-new", "password": user_password}, format="json"
    )
    assert response.status_code == 201, response.content
    # The token is used, on a read, a write and a refused write, with the secret in the query too.
    client, ro_secret = bearer("developer", read_only=True)
    client.get(f"/api/v1/containers/?token={ro_secret}")
    client.post("/api/v1/teams/", {"name": "ts-t"}, format="json")
    user_client = api()
    user_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_secret}")
    user_client.get("/api/v1/containers/")
    user_client.post("/api/v1/images/pull/", {"ref": "busybox", "host": host.name}, format="json")
    # Logins through the dashboard: a wrong password, then the right one.
    page = Client()
    page.post("/login/", {"username": "ts-viewer", "password": "ts-wrong-password-Yy7"})
    page.post("/login/", {"username": "ts-viewer", "password": PASSWORD})
    page.post(
        "/manage/users/new/",
        {"username": "ts-other", "password": "ts-dash-user-password-Qq3"},
    )
    events = list(AuditEvent.objects.all())
    assert len(events) >= 8
    text = "\n".join(
        json.dumps([e.summary, e.reason, e.object_repr, e.action], default=str) for e in events
    )
    secrets = {
        "registry password": registry_password,
        "changed registry password": changed_password,
        "token": token_secret,
        "read-only token": ro_secret,
        "new user's password": user_password,
        "wrong login password": "ts-wrong-password-Yy7",
        "login password": PASSWORD,
        "dashboard user password": "ts-dash-user-password-Qq3",
    }
    for what, secret in secrets.items():
        assert secret not in text, f"the {what} is in the audit log"
    assert "Bearer" not in text and "HTTP_AUTHORIZATION" not in text


def test_environment_values_stay_out_of_the_audit_log(api, host, teams):
    secret = "ts-env-secret-Hq47"
    response = api("developer").post(
        "/api/v1/containers/",
        {"start": False, "spec": {"image": "busybox", "env": [f"DB_PASSWORD={secret}", "A=1"]}},
        format="json",
    )
    assert response.status_code in (201, 202), response.content
    events = AuditEvent.objects.filter(action="container.create")
    dumped = json.dumps([e.summary for e in events])
    assert secret not in dumped
    assert "DB_PASSWORD=[redacted]" in dumped  # the key stays, for the record
