"""Group mappings through the REST API and the dashboard: directory.view / directory.manage
through the gate, the escalation rule, every change audited."""

import pytest
from rest_framework.test import APIClient

from audit.models import AuditEvent
from directory.models import GroupMapping
from rbac.models import Role, RoleBinding

pytestmark = pytest.mark.django_db
URL = "/api/v1/directory/mappings/"


@pytest.fixture
def api(users):
    def make(name):
        client = APIClient()
        client.force_login(users[name])
        return client

    return make


def test_admin_creates_lists_and_deletes_a_mapping(api, teams):
    admin = api("admin")
    body = {"source": "ldap", "group": "cn=ts-devs,ou=groups,dc=berth,dc=test"}
    response = admin.post(
        URL, body | {"team": teams["alpha"].name, "role": "developer"}, format="json"
    )
    assert response.status_code == 201, response.json()
    mapping_id = response.json()["id"]
    assert response.json()["role"] == "developer"
    event = AuditEvent.objects.filter(action="directory.manage").order_by("-seq").first()
    assert event.outcome == "allowed" and event.summary["group"] == body["group"]
    listed = admin.get(URL).json()
    assert [m["id"] for m in listed["results"]] == [mapping_id]
    duplicate = admin.post(
        URL, body | {"team": teams["alpha"].name, "role": "developer"}, format="json"
    )
    assert duplicate.status_code == 400
    assert admin.delete(f"{URL}{mapping_id}/").status_code == 204
    assert not GroupMapping.objects.exists()


def test_a_mapping_without_a_team_binds_its_role_globally(api):
    response = api("admin").post(
        URL, {"source": "ldap", "group": "ts-auditors", "role": "auditor"}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["team"] is None
    response = api("admin").post(URL, {"source": "ldap", "group": "ts-nothing"}, format="json")
    assert response.status_code == 400
    assert "a team, a role, or both" in str(response.json())


def test_bad_input_is_a_clear_400(api, teams):
    admin = api("admin")
    for body in (
        {"source": "kerberos", "group": "x", "team": teams["alpha"].name},
        {"source": "oidc", "group": "", "team": teams["alpha"].name},
        {"source": "oidc", "group": "x", "team": "no-such-team"},
        {"source": "oidc", "group": "x", "team": teams["alpha"].name, "role": "no-such-role"},
        {"source": "oidc", "group": "x" * 300, "team": teams["alpha"].name},
    ):
        response = admin.post(URL, body, format="json")
        assert response.status_code == 400, (body, response.status_code)
    assert not GroupMapping.objects.exists()


def test_viewer_reads_nothing_and_changes_nothing(api, teams):
    response = api("rando").get(URL)
    assert response.status_code == 403
    response = api("viewer").post(
        URL, {"source": "oidc", "group": "g", "team": teams["alpha"].name}, format="json"
    )
    assert response.status_code == 403
    assert AuditEvent.objects.filter(action="directory.manage", outcome="denied").exists()


def test_a_mapping_grants_only_what_its_author_holds(api, users, teams):
    """A team-scoped directory manager may not hand out the admin role through a group."""
    manager = Role.objects.create(
        name="ts-directory-manager",
        permissions=["directory.view", "directory.manage", "container.view"],
    )
    RoleBinding.objects.create(user=users["rando"], role=manager, scope_team=teams["alpha"])
    client = api("rando")
    response = client.post(
        URL,
        {"source": "oidc", "group": "g", "team": teams["alpha"].name, "role": "admin"},
        format="json",
    )
    assert response.status_code == 403
    assert "rbac.escalate" in str(response.json())
    # Another team is out of scope altogether.
    response = client.post(
        URL, {"source": "oidc", "group": "g", "team": teams["beta"].name}, format="json"
    )
    assert response.status_code == 403
    # A global role is for those who manage the directory everywhere.
    response = client.post(URL, {"source": "oidc", "group": "g", "role": "viewer"}, format="json")
    assert response.status_code == 403
    # Membership only, in their own team: allowed.
    response = client.post(
        URL, {"source": "oidc", "group": "g", "team": teams["alpha"].name}, format="json"
    )
    assert response.status_code == 201, response.json()


def test_dashboard_page_adds_and_removes_mappings(client, users, teams):
    client.force_login(users["admin"])
    page = client.get("/manage/directory/")
    assert page.status_code == 200 and b'id="mapping-form"' in page.content
    assert b"/manage/directory/" in client.get("/").content  # the nav entry
    response = client.post(
        "/manage/directory/",
        {"source": "oidc", "group": "ts-ops", "team": teams["beta"].pk, "role": "viewer"},
    )
    assert response.status_code == 302
    mapping = GroupMapping.objects.get()
    assert (mapping.group, mapping.team, mapping.role.name) == ("ts-ops", teams["beta"], "viewer")
    assert b"ts-ops" in client.get("/manage/directory/").content
    assert client.post(f"/manage/directory/{mapping.pk}/delete/").status_code == 302
    assert not GroupMapping.objects.exists()


def test_dashboard_page_is_refused_without_directory_view(client, users):
    client.force_login(users["rando"])
    assert client.get("/manage/directory/").status_code == 403
    assert b"/manage/directory/" not in client.get("/").content
