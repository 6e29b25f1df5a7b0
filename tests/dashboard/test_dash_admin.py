"""Administration pages: custom roles, bindings, API tokens and the audit viewer."""

import csv
import io
import json

import pytest
from dash_helpers import PASSWORD
from django.test import Client

from accounts.models import ApiToken, User
from audit.models import AuditEvent
from rbac.models import Role, RoleBinding

pytestmark = pytest.mark.django_db


def test_admin_builds_a_custom_role_binds_it_and_the_users_view_changes(login, users, containers):
    admin = login("admin")
    rando = login("rando")
    assert rando.get("/containers/").status_code == 403
    page = admin.get("/manage/roles/new/").content.decode()
    assert 'value="container.start"' in page and 'value="rbac.escalate"' in page
    response = admin.post(
        "/manage/roles/new/",
        {
            "name": "td-starter",
            "description": "start things",
            "permissions": ["container.view", "container.start"],
        },
    )
    assert response.status_code == 302
    role = Role.objects.get(name="td-starter")
    assert sorted(role.permissions) == ["container.start", "container.view"] and not role.builtin
    response = admin.post(
        "/manage/bindings/",
        {"subject": f"user:{users['rando'].pk}", "role": "td-starter", "scope": "global"},
    )
    assert response.status_code == 302
    assert RoleBinding.objects.filter(user=users["rando"], role=role).exists()
    # Rando now sees containers and may start the stopped one, but not stop or remove it.
    assert rando.get("/containers/").status_code == 200
    page = rando.get(f"/containers/{containers['beta'].pk}/").content.decode()
    assert 'data-action="start"' in page and 'data-action="remove"' not in page
    assert (
        AuditEvent.objects.filter(actor="td-admin", action="role.manage", outcome="allowed")
        .exclude(object_id="")
        .count()
        == 2
    )


def test_role_manager_cannot_grant_what_they_lack(login, users):
    manager = Role.objects.create(
        name="td-rolemgr", permissions=["role.view", "role.manage", "container.view"]
    )
    RoleBinding.objects.create(user=users["rando"], role=manager)
    client = login("rando")
    response = client.post(
        "/manage/roles/new/", {"name": "td-root", "permissions": ["container.privileged"]}
    )
    assert response.status_code == 403
    assert "rbac.escalate" in response.content.decode()
    assert not Role.objects.filter(name="td-root").exists()
    # Granting what they hold is fine; binding anything to themselves is not.
    assert (
        client.post(
            "/manage/roles/new/", {"name": "td-look", "permissions": ["container.view"]}
        ).status_code
        == 302
    )
    response = client.post(
        "/manage/bindings/",
        {"subject": f"user:{users['rando'].pk}", "role": "td-look", "scope": "global"},
    )
    assert response.status_code == 403
    assert "your own role bindings" in response.content.decode()
    # A role they do not hold all of cannot be bound to someone else either.
    response = client.post(
        "/manage/bindings/",
        {"subject": f"user:{users['viewer'].pk}", "role": "admin", "scope": "global"},
    )
    assert response.status_code == 403
    assert not RoleBinding.objects.filter(user=users["viewer"], role__name="admin").exists()


def test_admin_removes_a_binding_but_not_their_own(login, users):
    admin = login("admin")
    theirs = RoleBinding.objects.get(user=users["viewer"])
    assert admin.post(f"/manage/bindings/{theirs.pk}/delete/").status_code == 302
    assert not RoleBinding.objects.filter(pk=theirs.pk).exists()
    own = RoleBinding.objects.get(user=users["admin"])
    assert admin.post(f"/manage/bindings/{own.pk}/delete/").status_code == 403
    assert RoleBinding.objects.filter(pk=own.pk).exists()


def test_invalid_role_is_shown(login):
    response = login("admin").post(
        "/manage/roles/new/", {"name": "bad name!", "permissions": ["nope.x"]}
    )
    assert response.status_code == 400
    assert "unknown permission" in response.content.decode()


def test_token_is_shown_once_and_can_be_revoked(login, users):
    client = login("developer")
    response = client.post("/manage/tokens/", {"name": "td-ci", "days": "30", "read_only": "on"})
    assert response.status_code == 201 and response["Cache-Control"] == "no-store"
    secret = (
        response.content.decode()
        .split('id="token-secret"', 1)[1]
        .split("<code>", 1)[1]
        .split("</code>", 1)[0]
    )
    assert secret.startswith("berth_")
    token = ApiToken.objects.get(name="td-ci")
    assert token.read_only and token.key_hash != secret
    assert secret not in client.get("/manage/tokens/").content.decode()
    # The token works against the API until revoked.
    api = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.get("/api/v1/containers/").status_code == 200
    assert client.post(f"/manage/tokens/{token.pk}/revoke/").status_code == 302
    assert api.get("/api/v1/containers/").status_code == 401
    # Someone else's token is not there for them.
    assert login("operator").post(f"/manage/tokens/{token.pk}/revoke/").status_code == 404


def test_audit_viewer_filters_and_exports(login, users):
    Client().post("/login/", {"username": "td-viewer", "password": "wrong"})
    Client().post("/login/", {"username": "td-viewer", "password": PASSWORD})
    client = login("auditor")
    page = client.get("/manage/audit/?action=auth.login&outcome=denied").content.decode()
    assert "bad credentials" in page and "· 1 events" in page
    response = client.get("/manage/audit/export/?action=auth.login&format=csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {r["outcome"] for r in rows} == {"allowed", "denied"} and all(r["hash"] for r in rows)
    response = client.get("/manage/audit/export/?actor=td-viewer&format=json")
    lines = [
        json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()
    ]
    assert lines and all(line["actor"] == "td-viewer" for line in lines)
    assert login("developer").get("/manage/audit/export/").status_code == 403


def test_users_and_teams_pages(login, users, teams):
    page = login("admin").get("/manage/users/").content.decode()
    assert "td-developer" in page and "td-alpha" in page
    page = login("developer").get("/manage/teams/").content.decode()
    assert "td-alpha" in page and "td-beta" not in page
    assert User.objects.count() == 6


def test_admin_creates_a_user_who_can_log_in(login):
    response = login("admin").post(
        "/manage/users/new/", {"username": "td-new", "password": "a-long-password-1"}
    )
    assert response.status_code == 302
    assert (
        Client()
        .post("/login/", {"username": "td-new", "password": "a-long-password-1"})
        .status_code
        == 302
    )
    assert (
        login("developer")
        .post("/manage/users/new/", {"username": "td-x", "password": "a-long-password-1"})
        .status_code
        == 403
    )
    assert not User.objects.filter(username="td-x").exists()
    # Bad input is refused with a message and nothing created.
    login("admin").post("/manage/users/new/", {"username": "td-short", "password": "x"})
    assert not User.objects.filter(username="td-short").exists()


def test_team_members_change_through_the_gate(login, users, teams):
    admin = login("admin")
    response = admin.post(
        f"/manage/teams/{teams['beta'].pk}/members/", {"user": users["viewer"].pk, "op": "add"}
    )
    assert response.status_code == 302
    assert teams["beta"].members.filter(pk=users["viewer"].pk).exists()
    admin.post(
        f"/manage/teams/{teams['beta'].pk}/members/", {"user": users["viewer"].pk, "op": "remove"}
    )
    assert not teams["beta"].members.filter(pk=users["viewer"].pk).exists()
    # Joining a team yourself is changing your own bindings: refused, even to an admin.
    response = admin.post(
        f"/manage/teams/{teams['beta'].pk}/members/", {"user": users["admin"].pk, "op": "add"}
    )
    assert response.status_code == 403
    # The developer may not change teams at all.
    response = login("developer").post(
        f"/manage/teams/{teams['alpha'].pk}/members/", {"user": users["rando"].pk}
    )
    assert response.status_code == 403
    assert not teams["alpha"].members.filter(pk=users["rando"].pk).exists()
