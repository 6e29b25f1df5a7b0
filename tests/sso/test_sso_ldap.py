"""LDAP sign-in against a real slapd: mappings applied at each login, refusals audited."""

import pytest

from accounts.models import User
from audit.models import AuditEvent
from directory.models import DirectoryIdentity, SyncedBinding
from rbac.models import RoleBinding
from tests.sso.sso_helpers import team_names

pytestmark = pytest.mark.django_db


def login(client, username, password):
    return client.post("/login/", {"username": username, "password": password})


def signed_in(client) -> bool:
    return client.get("/").status_code == 200


def last_event(action, **filters):
    return AuditEvent.objects.filter(action=action, **filters).order_by("-seq").first()


def test_directory_user_signs_in_with_the_mapped_team_and_role(client, ldap_on, mappings, teams):
    response = login(client, "ts-alice", "alice-ldap-pw")
    assert response.status_code == 302, response.content[:500]
    assert signed_in(client)
    alice = User.objects.get(username="ts-alice")
    assert not alice.has_usable_password()  # only the directory can vouch for her
    assert alice.email == "ts-alice@berth.test"
    assert team_names(alice) == {teams["alpha"].name}
    binding = RoleBinding.objects.get(user=alice)
    assert (binding.role.name, binding.scope_team) == ("developer", teams["alpha"])
    identity = DirectoryIdentity.objects.get(user=alice)
    assert identity.subject == "uid=ts-alice,ou=people,dc=berth,dc=test"
    sync = last_event("directory.sync", actor="ts-alice")
    assert sync.outcome == "allowed"
    assert "member of ts-alpha" in sync.summary["added"]
    assert "role developer on team:ts-alpha" in sync.summary["added"]
    # The API sees the grants at once: alice may view alpha's containers.
    assert client.get("/api/v1/containers/").status_code == 200


def test_group_changes_apply_at_the_next_login(client, ldap_on, mappings, teams):
    assert login(client, "ts-alice", "alice-ldap-pw").status_code == 302
    alice = User.objects.get(username="ts-alice")
    assert team_names(alice) == {teams["alpha"].name}
    try:
        ldap_on.set_members("ts-devs", ["ts-carol"])
        ldap_on.set_members("ts-ops", ["ts-bob", "ts-alice"])
        client.post("/logout/")
        assert login(client, "ts-alice", "alice-ldap-pw").status_code == 302
        assert team_names(alice) == {teams["beta"].name}
        roles = {(b.role.name, b.scope_team.name) for b in RoleBinding.objects.filter(user=alice)}
        assert roles == {("viewer", teams["beta"].name)}
        sync = last_event("directory.sync", actor="ts-alice")
        assert "member of ts-alpha" in sync.summary["removed"]
        assert "role developer on team:ts-alpha" in sync.summary["removed"]
        assert "member of ts-beta" in sync.summary["added"]
    finally:
        ldap_on.set_members("ts-devs", ["ts-alice", "ts-carol"])
        ldap_on.set_members("ts-ops", ["ts-bob"])


def test_a_global_mapping_binds_its_role_everywhere(client, ldap_on, mappings):
    from directory.models import GroupMapping
    from rbac.models import Role

    GroupMapping.objects.create(
        source="ldap",
        group="cn=ts-everyone,ou=groups,dc=berth,dc=test",
        team=None,
        role=Role.objects.get(name="auditor"),
    )
    assert login(client, "ts-bob", "bob-ldap-pw").status_code == 302
    bob = User.objects.get(username="ts-bob")
    bindings = {(b.role.name, b.scope_label) for b in RoleBinding.objects.filter(user=bob)}
    assert bindings == {("viewer", "team:ts-beta"), ("auditor", "global")}
    assert client.get("/manage/audit/").status_code == 200  # audit.read, held globally


def test_grants_made_by_hand_survive_the_sync(client, ldap_on, mappings, teams):
    from accounts.models import Membership
    from rbac.models import Role

    assert login(client, "ts-bob", "bob-ldap-pw").status_code == 302
    bob = User.objects.get(username="ts-bob")
    Membership.objects.create(team=teams["alpha"], user=bob)
    manual = RoleBinding.objects.create(
        user=bob, role=Role.objects.get(name="auditor"), scope_team=None
    )
    client.post("/logout/")
    assert login(client, "ts-bob", "bob-ldap-pw").status_code == 302
    assert team_names(bob) == {teams["alpha"].name, teams["beta"].name}
    assert RoleBinding.objects.filter(pk=manual.pk).exists()
    assert not SyncedBinding.objects.filter(binding=manual).exists()


def test_wrong_password_is_refused(client, ldap_on, mappings):
    response = login(client, "ts-alice", "not-her-password")
    assert response.status_code == 401
    assert b"Wrong username or password" in response.content
    assert not signed_in(client)
    assert not User.objects.filter(username="ts-alice").exists()
    assert last_event("auth.login", object_repr="ts-alice").outcome == "denied"


def test_empty_password_is_never_an_anonymous_bind(client, ldap_on, mappings):
    from django.contrib.auth import authenticate

    assert authenticate(None, username="ts-alice", password="") is None
    assert not User.objects.filter(username="ts-alice").exists()


def test_disabled_directory_user_is_refused(client, ldap_on, mappings):
    response = login(client, "ts-carol", "carol-ldap-pw")
    assert response.status_code == 401
    assert b"This directory account is disabled." in response.content
    assert not signed_in(client)
    assert not User.objects.filter(username="ts-carol").exists()
    refused = AuditEvent.objects.filter(action="auth.login", object_repr="ts-carol")
    assert any("disabled in the directory" in e.reason for e in refused)


def test_user_disabled_after_signing_in_loses_the_mapped_grants(client, ldap_on, mappings):
    assert login(client, "ts-alice", "alice-ldap-pw").status_code == 302
    alice = User.objects.get(username="ts-alice")
    assert team_names(alice)
    client.post("/logout/")
    conn = ldap_on.admin()
    dn = "uid=ts-alice,ou=people,dc=berth,dc=test"
    try:
        conn.modify(dn, {"employeeType": [("MODIFY_REPLACE", ["disabled"])]})
        response = login(client, "ts-alice", "alice-ldap-pw")
        assert response.status_code == 401
        assert b"This directory account is disabled." in response.content
        assert team_names(alice) == set()
        assert not RoleBinding.objects.filter(user=alice).exists()
        assert not signed_in(client)
    finally:
        conn.modify(dn, {"employeeType": [("MODIFY_DELETE", [])]})
        conn.unbind()


def test_user_whose_groups_map_to_no_team_is_refused(client, ldap_on, mappings):
    response = login(client, "ts-dave", "dave-ldap-pw")
    assert response.status_code == 401
    assert b"None of your directory groups gives access" in response.content
    assert not User.objects.filter(username="ts-dave").exists()
    reasons = [
        e.reason for e in AuditEvent.objects.filter(action="auth.login", object_repr="ts-dave")
    ]
    assert any("maps to a team" in r for r in reasons)


def test_losing_every_mapped_group_removes_the_grants_and_refuses(client, ldap_on, mappings, teams):
    assert login(client, "ts-bob", "bob-ldap-pw").status_code == 302
    bob = User.objects.get(username="ts-bob")
    client.post("/logout/")
    try:
        ldap_on.set_members("ts-ops", [])
        assert login(client, "ts-bob", "bob-ldap-pw").status_code == 401
        assert team_names(bob) == set()
        assert not RoleBinding.objects.filter(user=bob).exists()
        assert not signed_in(client)
    finally:
        ldap_on.set_members("ts-ops", ["ts-bob"])


def test_directory_name_never_takes_over_a_local_account(client, ldap_on, mappings, users):
    try:
        ldap_on.set_members("ts-devs", ["ts-alice", "ts-carol", "ts-admin"])
        response = login(client, "ts-admin", "shadow-ldap-pw")
        assert response.status_code == 401
        assert b"not linked to the directory" in response.content
        assert not DirectoryIdentity.objects.filter(user=users["admin"]).exists()
    finally:
        ldap_on.set_members("ts-devs", ["ts-alice", "ts-carol"])
    # The local account itself still signs in with its own password.
    assert login(client, "ts-admin", "admin-password-1").status_code == 302


def test_wrong_service_bind_password_is_refused_clearly(client, settings, ldap_on, mappings):
    settings.BERTH_LDAP = ldap_on.settings(BIND_PASSWORD="wrong")
    response = login(client, "ts-alice", "alice-ldap-pw")
    assert response.status_code == 401
    assert b"its service account was refused" in response.content
    assert not signed_in(client)
    assert not User.objects.filter(username="ts-alice").exists()
    reasons = [
        e.reason for e in AuditEvent.objects.filter(action="auth.login", object_repr="ts-alice")
    ]
    assert any("service account bind refused" in r for r in reasons)


def test_directory_down_refuses_clearly_and_local_accounts_still_work(
    client, settings, mappings, users
):
    """A directory of its own, used once, then stopped by its PID: nobody gets in through it."""
    from tests.sso.slapd import Slapd
    from tests.sso.sso_helpers import GROUPS, PEOPLE

    directory = Slapd(PEOPLE, GROUPS).start()
    try:
        settings.BERTH_LDAP = directory.settings()
        assert login(client, "ts-alice", "alice-ldap-pw").status_code == 302
        client.post("/logout/")
    finally:
        directory.stop()
    response = login(client, "ts-alice", "alice-ldap-pw")
    assert response.status_code == 401
    assert b"directory server cannot be reached" in response.content
    assert not signed_in(client)
    reasons = [
        e.reason for e in AuditEvent.objects.filter(action="auth.login", object_repr="ts-alice")
    ]
    assert any("directory unreachable" in r for r in reasons)
    assert login(client, "ts-viewer", "viewer-password-1").status_code == 302
    assert signed_in(client)


def test_start_tls_verifies_the_directory_certificate(client, settings, mappings):
    """StartTLS with the directory's CA signs in; with a CA that did not sign it, nobody does."""
    from tests.sso.slapd import Slapd
    from tests.sso.sso_helpers import GROUPS, PEOPLE

    directory = Slapd(PEOPLE, GROUPS, tls=True).start()
    try:
        settings.BERTH_LDAP = directory.settings(
            START_TLS=True, CA_FILE=str(directory.root / "ca.pem")
        )
        assert login(client, "ts-alice", "alice-ldap-pw").status_code == 302
        client.post("/logout/")
        # The system's CAs never signed this throwaway CA: refused, audited.
        settings.BERTH_LDAP = directory.settings(START_TLS=True, CA_FILE="")
        response = login(client, "ts-alice", "alice-ldap-pw")
        assert response.status_code == 401
        assert b"could not verify the directory" in response.content
        assert not signed_in(client)
        reasons = [
            e.reason for e in AuditEvent.objects.filter(action="auth.login", object_repr="ts-alice")
        ]
        assert any("TLS certificate not verified" in r for r in reasons), reasons
    finally:
        directory.stop()


def test_a_filter_that_matches_several_entries_is_refused(client, settings, ldap_on, mappings):
    settings.BERTH_LDAP = ldap_on.settings(
        USER_FILTER="(&(objectClass=inetOrgPerson)(|(uid={username})(sn=Test)))"
    )
    response = login(client, "ts-alice", "alice-ldap-pw")
    assert response.status_code == 401
    assert b"matches several directory accounts" in response.content
    assert not signed_in(client)


def test_filter_characters_in_the_username_are_escaped(client, ldap_on, mappings):
    for name in ("*", "ts-alice)(uid=*", "ts-al*"):
        response = login(client, name, "alice-ldap-pw")
        assert response.status_code == 401, name
        assert b"Wrong username or password" in response.content
    assert not User.objects.filter(username="ts-alice").exists()
