"""Dashboard administration of teams, users' active and staff flags, and container renames.

Each goes through accounts.services / containers.services, the same gate calls as the REST API.
"""

import pytest

from accounts.models import Membership, Team, User
from audit.models import AuditEvent
from containers.models import Container
from operations.models import Operation
from rbac.models import Role, RoleBinding

pytestmark = pytest.mark.django_db


def _events(actor, action, outcome):
    return AuditEvent.objects.filter(actor=actor, action=action, outcome=outcome).count()


def test_admin_creates_a_team_and_edits_its_members(login, users):
    admin = login("admin")
    assert 'id="team-form"' in admin.get("/manage/teams/").content.decode()
    response = admin.post("/manage/teams/new/", {"name": "td-gamma", "description": "third"})
    assert response.status_code == 302
    team = Team.objects.get(name="td-gamma")
    assert team.description == "third"
    assert _events("td-admin", "team.create", "allowed") == 1
    # The same name again is refused with a message; nothing new is made.
    response = admin.post(
        "/manage/teams/new/", {"name": "td-gamma"}, follow=True, HTTP_REFERER="/manage/teams/"
    )
    assert "already exists" in response.content.decode()
    assert Team.objects.filter(name="td-gamma").count() == 1

    rando = users["rando"]
    admin.post(f"/manage/teams/{team.pk}/members/", {"user": rando.pk, "op": "add"})
    assert Membership.objects.filter(team=team, user=rando).exists()
    admin.post(f"/manage/teams/{team.pk}/members/", {"user": rando.pk, "op": "remove"})
    assert not Membership.objects.filter(team=team, user=rando).exists()
    assert _events("td-admin", "team.change", "allowed") == 2


def test_viewer_cannot_create_teams_nor_sees_the_form(login):
    viewer = login("viewer")
    assert 'id="team-form"' not in viewer.get("/manage/teams/").content.decode()
    assert viewer.post("/manage/teams/new/", {"name": "td-sneaky"}).status_code == 403
    assert not Team.objects.filter(name="td-sneaky").exists()
    assert _events("td-viewer", "team.create", "denied") == 1


def test_adding_a_member_follows_the_escalation_rule(login, users, teams):
    # A team manager without the admin's permissions cannot hand out the team's admin binding.
    manager = Role.objects.create(name="td-teammgr", permissions=["team.view", "team.change"])
    RoleBinding.objects.create(user=users["rando"], role=manager)
    RoleBinding.objects.create(team=teams["beta"], role=Role.objects.get(name="admin"))
    client = login("rando")
    response = client.post(
        f"/manage/teams/{teams['beta'].pk}/members/", {"user": users["viewer"].pk, "op": "add"}
    )
    assert response.status_code == 403
    assert not Membership.objects.filter(team=teams["beta"], user=users["viewer"]).exists()


def test_admin_deactivates_and_reactivates_a_user_and_sets_staff(login, users):
    admin = login("admin")
    page = admin.get("/manage/users/").content.decode()
    assert f'action="/manage/users/{users["rando"].pk}/flags/"' in page
    assert f'action="/manage/users/{users["admin"].pk}/flags/"' not in page  # not for oneself
    url = f"/manage/users/{users['rando'].pk}/flags/"
    assert admin.post(url, {"is_active": "0"}).status_code == 302
    assert not User.objects.get(pk=users["rando"].pk).is_active
    assert admin.post(url, {"is_active": "1", "is_staff": "1"}).status_code == 302
    rando = User.objects.get(pk=users["rando"].pk)
    assert rando.is_active and rando.is_staff and not rando.is_superuser
    assert _events("td-admin", "user.change", "allowed") == 2
    # Unknown or malformed values change nothing.
    admin.post(url, {"is_staff": "yes"})
    admin.post(url, {"is_superuser": "1"})
    rando = User.objects.get(pk=users["rando"].pk)
    assert rando.is_staff and not rando.is_superuser


def test_nobody_changes_their_own_flags(login, users):
    admin = login("admin")
    response = admin.post(f"/manage/users/{users['admin'].pk}/flags/", {"is_staff": "1"})
    assert response.status_code == 403
    assert not User.objects.get(pk=users["admin"].pk).is_staff
    assert _events("td-admin", "user.change", "denied") == 1


def test_operator_cannot_change_flags_nor_sees_the_buttons(login, users):
    operator = login("operator")
    assert "/flags/" not in operator.get("/manage/users/").content.decode()
    response = operator.post(f"/manage/users/{users['viewer'].pk}/flags/", {"is_active": "0"})
    assert response.status_code == 403
    assert User.objects.get(pk=users["viewer"].pk).is_active


def test_user_changer_cannot_deactivate_someone_who_holds_more(login, users):
    # user.change alone does not let anyone act on an admin: the escalation rule applies.
    changer = Role.objects.create(name="td-userchg", permissions=["user.view", "user.change"])
    RoleBinding.objects.create(user=users["rando"], role=changer)
    client = login("rando")
    response = client.post(f"/manage/users/{users['admin'].pk}/flags/", {"is_active": "0"})
    assert response.status_code == 403
    assert User.objects.get(pk=users["admin"].pk).is_active


def test_only_admins_grant_staff(login, users):
    # user.change suffices to deactivate someone who holds less, not to make them staff.
    changer = Role.objects.create(name="td-userchg2", permissions=["user.view", "user.change"])
    RoleBinding.objects.create(user=users["rando"], role=changer)
    plain = User.objects.create_user(username="td-plain", password="x-password-1")
    client = login("rando")
    url = f"/manage/users/{plain.pk}/flags/"
    assert client.post(url, {"is_staff": "1"}).status_code == 403
    assert not User.objects.get(pk=plain.pk).is_staff
    assert client.post(url, {"is_active": "0"}).status_code == 302
    assert not User.objects.get(pk=plain.pk).is_active


def test_developer_renames_their_container_from_the_detail_page(login, containers):
    dev = login("developer")
    alpha = containers["alpha"]
    assert 'id="rename-form"' in dev.get(f"/containers/{alpha.pk}/").content.decode()
    response = dev.post(f"/containers/{alpha.pk}/rename/", {"name": "td-web-renamed"})
    assert response.status_code == 302
    alpha.refresh_from_db()
    assert alpha.name == "td-web-renamed" and alpha.spec["name"] == "td-web-renamed"
    op = Operation.objects.get(kind="container.rename", target_id=str(alpha.pk))
    assert op.params == {"old": "td-web-a", "new": "td-web-renamed"}
    assert _events("td-developer", "container.change", "allowed") == 1


def test_rename_refuses_bad_names_taken_names_and_other_teams(login, containers):
    dev = login("developer")
    alpha, beta = containers["alpha"], containers["beta"]
    page = f"/containers/{alpha.pk}/"
    url = f"{page}rename/"
    response = dev.post(url, {"name": "bad name/"}, follow=True, HTTP_REFERER=page)
    assert "name:" in response.content.decode()
    response = dev.post(url, {"name": beta.name}, follow=True, HTTP_REFERER=page)
    assert "already exists" in response.content.decode()
    assert Container.objects.get(pk=alpha.pk).name == "td-web-a"
    # Another team's container: 404, not 403.
    assert dev.post(f"/containers/{beta.pk}/rename/", {"name": "td-x"}).status_code == 404
    viewer = login("viewer")
    assert 'id="rename-form"' not in viewer.get(f"/containers/{alpha.pk}/").content.decode()
    assert viewer.post(f"/containers/{alpha.pk}/rename/", {"name": "td-y"}).status_code == 403
    assert not Operation.objects.filter(kind="container.rename").exists()


def test_teams_page_shows_usage_against_quotas(login, teams, host):
    from dash_helpers import make_container

    Team.objects.filter(pk=teams["alpha"].pk).update(quotas={"containers": 5, "memory": 1024**3})
    make_container(teams["alpha"], host, "td-q1", desired_state="running")
    page = login("admin").get("/manage/teams/").content.decode()
    assert "containers 1 / 5" in page
    assert "memory 0 MiB / 1024 MiB" in page
    assert "running 1" in page
