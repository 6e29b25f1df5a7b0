"""Dangerous options, exec as root, and role management under the escalation rule."""

import pytest

from accounts.models import Membership
from audit.models import AuditEvent
from containers.models import Container
from operations.models import Operation
from rbac.models import Role, RoleBinding
from volumes.models import Volume

pytestmark = pytest.mark.django_db

DANGEROUS = {
    "privileged": ({"privileged": True}, "container.privileged"),
    "bind-root": (
        {"mounts": [{"type": "bind", "source": "/", "target": "/host"}]},
        "container.bind_mount",
    ),
    "bind-etc": (
        {"mounts": [{"type": "bind", "source": "/etc", "target": "/x"}]},
        "container.bind_mount",
    ),
    "bind-shadow": (
        {"mounts": [{"type": "bind", "source": "/etc/shadow", "target": "/x"}]},
        "container.bind_mount",
    ),
    "volume-as-path": (
        {"mounts": [{"type": "volume", "source": "/etc", "target": "/x"}]},
        "container.bind_mount",
    ),
    "volume-dotdot": (
        {"mounts": [{"type": "volume", "source": "../../etc", "target": "/x"}]},
        "container.bind_mount",
    ),
    "pid-host": ({"namespaces": {"pid": "host"}}, "container.host_namespaces"),
    "ipc-host": ({"namespaces": {"ipc": "host"}}, "container.host_namespaces"),
    "uts-host": ({"namespaces": {"uts": "host"}}, "container.host_namespaces"),
    "user-host": ({"namespaces": {"user": "host"}}, "container.host_namespaces"),
    "cgroup-host": ({"namespaces": {"cgroup": "host"}}, "container.host_namespaces"),
    "net-host": ({"network": {"mode": "host"}}, "container.host_namespaces"),
    "cap-ALL": ({"cap_add": ["ALL"]}, "container.cap_add"),
    "cap-all-lower": ({"cap_add": ["all"]}, "container.cap_add"),
    "cap-sys_admin": ({"cap_add": ["sys_admin"]}, "container.cap_add"),
    "cap-CAP_SYS_ADMIN": ({"cap_add": ["CAP_SYS_ADMIN"]}, "container.cap_add"),
    "cap-net_admin": ({"cap_add": ["NET_ADMIN"]}, "container.cap_add"),
    "device": ({"devices": ["/dev/sda"]}, "container.devices"),
    "seccomp-off": ({"seccomp": False}, "container.unconfined"),
    "nnp-off": ({"no_new_privileges": False}, "container.unconfined"),
    "port-80": (
        {"network": {"ports": [{"container_port": 80, "host_port": 80}]}},
        "container.low_ports",
    ),
    "host-address": (
        {"network": {"ports": [{"container_port": 80, "host_port": 8080, "host_ip": "127.0.0.1"}]}},
        "container.low_ports",
    ),
}


def _create(client, spec, team="tp-alpha"):
    body = {"team": team, "host": "tp-h1", "spec": {"image": "busybox", **spec}}
    return client.post("/api/v1/containers/", body, format="json")


@pytest.mark.parametrize("case", sorted(DANGEROUS))
def test_developer_refused_each_dangerous_option(api, host, case):
    spec, permission = DANGEROUS[case]
    response = _create(api("developer"), spec)
    assert response.status_code == 403, response.content
    assert permission in response.json()["error"]["message"]
    event = AuditEvent.objects.filter(actor="developer", action="container.create").latest("seq")
    assert event.outcome == "denied" and permission in event.reason
    assert not Container.objects.exists() and not Operation.objects.exists()


@pytest.mark.parametrize(
    "case", ["privileged", "bind-shadow", "cap-CAP_SYS_ADMIN", "pid-host", "port-80"]
)
def test_admin_may_use_dangerous_options(api, host, case):
    response = _create(api("admin"), DANGEROUS[case][0])
    assert response.status_code == 202, response.content
    assert AuditEvent.objects.filter(
        actor="admin", action="container.create", outcome="allowed"
    ).exists()


def test_volume_with_bind_driver_options_is_a_bind(api, users, teams, host):
    client = api("developer")
    response = client.post(
        "/api/v1/volumes/",
        {
            "name": "tp-sneaky",
            "team": "tp-alpha",
            "host": "tp-h1",
            "options": {"type": "none", "o": "bind", "device": "/etc"},
        },
        format="json",
    )
    assert response.status_code == 403
    assert "container.bind_mount" in response.json()["error"]["message"]
    # The same volume created behind the API's back still cannot be mounted by a developer.
    Volume.objects.create(
        team=teams["alpha"], host=host, name="tp-sneaky", options={"device": "/etc", "o": "bind"}
    )
    response = _create(
        client, {"mounts": [{"type": "volume", "source": "tp-sneaky", "target": "/x"}]}
    )
    assert response.status_code == 403
    assert "host path /etc" in response.json()["error"]["message"]


def test_another_teams_volume_cannot_be_mounted(api, teams, host):
    Volume.objects.create(team=teams["beta"], host=host, name="tp-beta-data")
    response = _create(
        api("developer"), {"mounts": [{"type": "volume", "source": "tp-beta-data", "target": "/x"}]}
    )
    assert response.status_code == 403
    assert "another team" in response.json()["error"]["message"]


def test_developer_gets_default_limits(api, host):
    response = _create(api("developer"), {"name": "tp-limited"})
    assert response.status_code == 202
    limits = Container.objects.get(name="tp-limited").spec["limits"]
    assert (
        limits["memory"] == 256 * 1024 * 1024
        and limits["pids"] == 512
        and limits["cpu_quota"] == 100000
    )
    response = _create(api("developer"), {"name": "tp-own-limits", "limits": {"memory": "64m"}})
    assert Container.objects.get(name="tp-own-limits").spec["limits"]["memory"] == 64 * 1024 * 1024


def test_developer_cannot_create_in_other_team(api, host):
    response = _create(api("developer"), {"name": "tp-x"}, team="tp-beta")
    assert response.status_code == 400  # beta is not even visible to them
    assert not Container.objects.exists()


def test_exec_as_root_into_another_teams_container(api, containers):
    client = api("operator")  # operator: exec everywhere, member of no team
    url = f"/api/v1/containers/{containers['alpha'].pk}/exec/"
    for user in (None, "root", "0", "0:0"):
        body = {"command": ["cat", "/etc/shadow"]} | ({"user": user} if user else {})
        response = client.post(url, body, format="json")
        assert response.status_code == 403, user
        assert "container.exec_root" in response.json()["error"]["message"]


# Role management: a "rolemgr" may manage roles but holds only the developer's permissions.
@pytest.fixture
def rolemgr(users, teams):
    developer = Role.objects.get(name="developer")
    role = Role.objects.create(
        name="tp-rolemgr", permissions=[*developer.permissions, "role.view", "role.manage"]
    )
    user = users["rando"].__class__.objects.create_user(username="rolemgr", password="x-password-1")
    RoleBinding.objects.create(user=user, role=role)
    return user


def _bind(client, **body):
    return client.post("/api/v1/bindings/", body, format="json")


def test_self_grant_admin_refused(api, rolemgr, users, teams):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(rolemgr)
    response = _bind(client, user=rolemgr.pk, role="admin")
    assert response.status_code == 403
    assert "your own" in response.json()["error"]["message"]
    # Granting a bigger role than one holds, even to someone else.
    response = _bind(client, user=users["rando"].pk, role="admin")
    assert response.status_code == 403 and "rbac.escalate" in response.json()["error"]["message"]
    response = _bind(client, user=users["rando"].pk, role="operator")
    assert response.status_code == 403 and "user.view" in response.json()["error"]["message"]
    response = _bind(client, user=users["rando"].pk, role="developer", scope_team=teams["beta"].pk)
    assert response.status_code == 201, response.content  # a subset of what rolemgr holds
    # Joining a team to inherit its roles is editing one's own bindings too.
    response = client.post(
        f"/api/v1/teams/{teams['alpha'].pk}/members/", {"user": rolemgr.pk}, format="json"
    )
    assert response.status_code in (403, 404)
    assert not Membership.objects.filter(user=rolemgr).exists()
    denied = AuditEvent.objects.filter(actor="rolemgr", outcome="denied").count()
    assert denied >= 2


def test_custom_role_cannot_exceed_holder(api, rolemgr):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(rolemgr)
    response = client.post(
        "/api/v1/roles/", {"name": "tp-big", "permissions": ["container.privileged"]}, format="json"
    )
    assert response.status_code == 403 and "rbac.escalate" in response.json()["error"]["message"]
    response = client.post(
        "/api/v1/roles/", {"name": "tp-small", "permissions": ["container.view"]}, format="json"
    )
    assert response.status_code == 201
    own = Role.objects.get(name="tp-rolemgr")
    response = client.patch(f"/api/v1/roles/{own.pk}/", {"permissions": ["*"]}, format="json")
    assert response.status_code == 403 and "you hold it" in response.json()["error"]["message"]


def test_admin_cannot_edit_own_binding_but_can_grant(api, users):
    client = api("admin")
    own = RoleBinding.objects.get(user=users["admin"])
    response = client.delete(f"/api/v1/bindings/{own.pk}/")
    assert response.status_code == 403
    assert RoleBinding.objects.filter(pk=own.pk).exists()
    response = _bind(client, user=users["rando"].pk, role="admin")
    assert response.status_code == 201


def test_staff_and_superuser_fields_not_writable_by_self(api, users):
    client = api("admin")
    me = users["admin"].pk
    response = client.patch(f"/api/v1/users/{me}/", {"is_superuser": True}, format="json")
    assert response.status_code == 403
    response = client.patch(f"/api/v1/users/{me}/", {"is_active": False}, format="json")
    assert response.status_code == 403
    response = client.patch(
        f"/api/v1/users/{users['rando'].pk}/", {"is_staff": True}, format="json"
    )
    assert response.status_code == 200
    # An operator may list users but not change them.
    response = api("operator").patch(
        f"/api/v1/users/{users['operator'].pk}/", {"is_superuser": True}, format="json"
    )
    assert response.status_code == 403


def test_team_scoped_admin_cannot_add_members_to_a_globally_bound_team(api, users, teams):
    from rest_framework.test import APIClient

    # beta holds admin globally; a manager who is admin only on alpha must not hand that out.
    RoleBinding.objects.create(team=teams["beta"], role=Role.objects.get(name="admin"))
    lead = users["rando"].__class__.objects.create_user(username="tp-lead")
    RoleBinding.objects.create(
        user=lead, role=Role.objects.get(name="admin"), scope_team=teams["beta"]
    )
    client = APIClient()
    client.force_login(lead)
    response = client.post(
        f"/api/v1/teams/{teams['beta'].pk}/members/", {"user": users["viewer"].pk}, format="json"
    )
    assert response.status_code == 403
    assert "requires rbac.escalate" in response.json()["error"]["message"]
    assert not Membership.objects.filter(team=teams["beta"], user=users["viewer"]).exists()
    # A global admin may.
    response = api("admin").post(
        f"/api/v1/teams/{teams['beta'].pk}/members/", {"user": users["viewer"].pk}, format="json"
    )
    assert response.status_code == 201


def test_changing_a_more_powerful_user_is_escalation(api, users):
    from rest_framework.test import APIClient

    role = Role.objects.create(
        name="tp-useradmin", permissions=["user.view", "user.change", "user.delete"]
    )
    useradmin = users["rando"].__class__.objects.create_user(username="tp-useradmin")
    RoleBinding.objects.create(user=useradmin, role=role)
    client = APIClient()
    client.force_login(useradmin)
    response = client.patch(
        f"/api/v1/users/{users['admin'].pk}/", {"password": "taken-over-1"}, format="json"
    )
    assert response.status_code == 403 and "rbac.escalate" in response.json()["error"]["message"]
    assert client.delete(f"/api/v1/users/{users['admin'].pk}/").status_code == 403
    response = client.patch(
        f"/api/v1/users/{users['rando'].pk}/", {"email": "r@example.com"}, format="json"
    )
    assert response.status_code == 200


def test_another_teams_network_cannot_be_joined(api, teams, host):
    from networks.models import Network

    Network.objects.create(team=teams["beta"], host=host, name="tp-beta-net")
    response = _create(api("developer"), {"network": {"networks": ["tp-beta-net"]}})
    assert response.status_code == 403 and "another team" in response.json()["error"]["message"]


def test_unknown_api_path_uses_the_error_format(api):
    response = api("admin").get("/api/v1/nothing-here/")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_developer_cannot_ask_for_unlimited_pids(api, host):
    response = _create(api("developer"), {"name": "tp-fork", "limits": {"pids": -1}})
    assert (
        response.status_code == 403
        and "pids without a limit" in response.json()["error"]["message"]
    )
    assert _create(api("admin"), {"name": "tp-fork", "limits": {"pids": -1}}).status_code == 202


def test_creating_a_staff_or_superuser_needs_every_permission(api, users):
    role = Role.objects.create(name="tp-user-maker", permissions=["user.create", "user.view"])
    RoleBinding.objects.create(user=users["rando"], role=role)
    client = api("rando")
    for flag in ("is_superuser", "is_staff"):
        response = client.post(
            "/api/v1/users/", {"username": f"tp-{flag}", flag: True}, format="json"
        )
        assert response.status_code == 403, response.content
    response = client.post("/api/v1/users/", {"username": "tp-plain"}, format="json")
    assert response.status_code == 201, response.content
    assert (
        api("admin")
        .post("/api/v1/users/", {"username": "tp-boss", "is_staff": True}, format="json")
        .status_code
        == 201
    )
