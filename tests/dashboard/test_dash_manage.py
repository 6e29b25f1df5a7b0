"""Issue 23's administration pages: edit, deactivate, delete and reset users (Django's password
validators), rename and delete teams (naming what blocks it), edit/delete/duplicate roles, and
one-page onboarding; every change through the gate, refusals audited."""

import pytest
from dash_helpers import make_container

from accounts.models import Membership, Team, User
from audit.models import AuditEvent
from rbac.models import Role, RoleBinding

pytestmark = pytest.mark.django_db


def test_creating_a_user_runs_djangos_password_validators(login):
    client = login("admin")
    response = client.post(
        "/manage/users/new/", {"username": "td-weak", "password": "password"}, HTTP_REFERER="/"
    )
    assert response.status_code == 302
    assert not User.objects.filter(username="td-weak").exists()
    page = client.get("/").content.decode()
    assert "too common" in page
    client.post("/manage/users/new/", {"username": "td-strong", "password": "Harbour-lights-77"})
    assert User.objects.filter(username="td-strong").exists()


def test_admin_edits_resets_deactivates_and_deletes_a_user(login, users):
    client = login("admin")
    target = users["rando"]
    assert f'href="/manage/users/{target.id}/"' in client.get("/manage/users/").content.decode()
    weak = client.post(f"/manage/users/{target.id}/", {"email": "r@x.test", "password": "12345678"})
    assert weak.status_code == 400 and "entirely numeric" in weak.content.decode()
    target.refresh_from_db()
    assert target.email == ""  # nothing half-done
    ok = client.post(
        f"/manage/users/{target.id}/",
        {"email": "r@x.test", "first_name": "Ran", "password": "Harbour-lights-77"},
    )
    assert ok.status_code == 302
    target.refresh_from_db()
    assert target.email == "r@x.test" and target.check_password("Harbour-lights-77")
    client.post(f"/manage/users/{target.id}/flags/", {"is_active": "0"})
    target.refresh_from_db()
    assert not target.is_active
    assert client.post(f"/manage/users/{target.id}/delete/").status_code == 302
    assert not User.objects.filter(pk=target.pk).exists()
    assert AuditEvent.objects.filter(action="user.delete", outcome="allowed").exists()


def test_nobody_deletes_themselves_and_a_viewer_edits_nobody(login, users):
    admin = users["admin"]
    login("admin").post(f"/manage/users/{admin.id}/delete/", HTTP_REFERER="/manage/users/")
    assert User.objects.filter(pk=admin.pk).exists()
    # Users a viewer may not see answer 404 like the API; the probe is audited as denied.
    viewer = login("viewer")
    assert viewer.get(f"/manage/users/{users['rando'].id}/").status_code in (403, 404)
    assert viewer.post(f"/manage/users/{users['rando'].id}/delete/").status_code in (403, 404)
    assert User.objects.filter(pk=users["rando"].pk).exists()
    assert AuditEvent.objects.filter(actor=users["viewer"].username, outcome="denied").exists()


def test_team_rename_and_delete_names_what_blocks_it(login, teams, host):
    client = login("admin")
    team = teams["beta"]
    client.post(f"/manage/teams/{team.id}/rename/", {"name": "td-gamma", "description": "g"})
    team.refresh_from_db()
    assert team.name == "td-gamma"
    make_container(team, host, "td-blocker", observed_state="running")
    make_container(team, host, "td-history", observed_state="removed")
    client.post(f"/manage/teams/{team.id}/delete/", HTTP_REFERER="/manage/teams/")
    page = client.get("/manage/teams/").content.decode()
    assert "cannot be deleted" in page and "td-blocker" in page
    assert Team.objects.filter(pk=team.pk).exists()
    team.containers.filter(name="td-blocker").update(observed_state="removed")
    client.post(f"/manage/teams/{team.id}/delete/")
    assert not Team.objects.filter(pk=team.pk).exists()


def test_roles_edit_duplicate_and_delete(login, users):
    client = login("admin")
    role = Role.objects.create(name="td-r", permissions=["container.view"])
    client.post(
        f"/manage/roles/{role.id}/",
        {"name": "td-r2", "permissions": ["container.view", "container.start"]},
    )
    role.refresh_from_db()
    assert role.name == "td-r2" and "container.start" in role.permissions
    dup = client.get(f"/manage/roles/{role.id}/duplicate/").content.decode()
    assert 'value="td-r2-copy"' in dup and 'value="container.start" checked' in dup
    assert 'action="/manage/roles/new/"' in dup
    builtin = Role.objects.get(name="viewer")
    assert client.get(f"/manage/roles/{builtin.id}/").status_code == 409
    RoleBinding.objects.create(user=users["rando"], role=role)
    client.post(f"/manage/roles/{role.id}/delete/", HTTP_REFERER="/manage/roles/")
    assert "still bound" in client.get("/manage/roles/").content.decode()
    RoleBinding.objects.filter(role=role).delete()
    client.post(f"/manage/roles/{role.id}/delete/")
    assert not Role.objects.filter(pk=role.pk).exists()


def test_onboarding_in_one_page(login, teams, users):
    client = login("admin")
    developer = Role.objects.get(name="developer")
    bad = client.post(
        "/manage/onboard/",
        {"username": "td-new", "password": "password", "team": "", "role": developer.id},
    )
    assert bad.status_code == 400
    text = bad.content.decode()
    assert "too common" in text and "choose a team" in text  # every error at once
    assert not User.objects.filter(username="td-new").exists()
    ok = client.post(
        "/manage/onboard/",
        {
            "username": "td-new",
            "password": "Harbour-lights-77",
            "team": teams["alpha"].id,
            "role": developer.id,
        },
    )
    assert ok.status_code == 302
    person = User.objects.get(username="td-new")
    assert Membership.objects.filter(user=person, team=teams["alpha"]).exists()
    assert RoleBinding.objects.filter(user=person, role=developer, scope_team=teams["alpha"])
    # A team admin who lacks role.manage cannot onboard (refused before anything is written).
    assert login("viewer").post("/manage/onboard/", {"username": "td-x"}).status_code == 403
    assert not User.objects.filter(username="td-x").exists()
