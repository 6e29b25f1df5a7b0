"""An agent's database role (PostgreSQL): its own host's rows, never RBAC, audit or other hosts.

Runs in the PostgreSQL pass of scripts/test (skipped on SQLite, which has no roles). The role
is created by `manage.py agent_db_role`, as an operator would, and the test then acts as that
role (`SET ROLE`, inside the test's transaction, so nothing outlives the test: roles and
grants are rolled back with it).
"""

import contextlib
import io
import types

import psycopg
import pytest
from agent import dbroles
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from accounts.models import Team
from audit.models import AuditEvent
from audit.services import record_event
from containers.models import Container
from hosts.models import Host
from rbac.models import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet():
    """Two hosts with one container each, and the agents' group set up."""
    if connection.vendor != "postgresql":
        pytest.skip("agent database roles need PostgreSQL")
    # Before any row: ALTER TABLE cannot run while foreign keys wait to be checked.
    call_command("agent_db_role", "--setup", stdout=io.StringIO())
    team = Team.objects.create(name="adb-team")
    hosts = [Host.objects.create(name=f"adb-h{i}", state="up") for i in (1, 2)]
    containers = [
        Container.objects.create(
            team=team, host=h, name=f"c{i}", image="busybox", spec={"image": "busybox"}
        )
        for i, h in enumerate(hosts)
    ]
    roles = []
    return hosts, containers, roles


class AgentSession:
    """SQL run as one agent's role, each statement in a savepoint (a refusal aborts only it)."""

    def execute(self, sql, params=()):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
            return types.SimpleNamespace(rowcount=cursor.rowcount)


@contextlib.contextmanager
def refused():
    """The statement inside is refused for lack of privilege (not for any other reason)."""
    with pytest.raises(DatabaseError) as caught:
        yield
    assert isinstance(caught.value.__cause__, psycopg.errors.InsufficientPrivilege), caught.value


@contextlib.contextmanager
def agent_of(host, roles):
    """Act as the role `manage.py agent_db_role --host` hands out (its URL names the role)."""
    out = io.StringIO()
    call_command("agent_db_role", "--host", host.name, stdout=out)
    role = dbroles.role_name(host.pk)
    roles.append(role)
    assert out.getvalue().strip().startswith(f"postgres://{role}:")
    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {role}")
    try:
        yield AgentSession()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")


def test_the_agent_writes_its_own_hosts_rows(fleet):
    hosts, containers, roles = fleet
    with agent_of(hosts[0], roles) as conn:
        changed = conn.execute(
            "UPDATE containers_container SET observed_state = 'running' WHERE id = %s",
            [containers[0].pk],
        ).rowcount
        assert changed == 1
        assert (
            conn.execute(
                "UPDATE hosts_host SET last_heartbeat = now(), state = 'up' WHERE id = %s",
                [hosts[0].pk],
            ).rowcount
            == 1
        )
    assert Container.objects.get(pk=containers[0].pk).observed_state == "running"


def test_the_agent_cannot_touch_another_hosts_container(fleet):
    hosts, containers, roles = fleet
    with agent_of(hosts[0], roles) as conn:
        other = containers[1].pk
        assert (
            conn.execute(
                "UPDATE containers_container SET observed_state = 'removed' WHERE id = %s", [other]
            ).rowcount
            == 0
        )
        assert conn.execute("DELETE FROM containers_container WHERE id = %s", [other]).rowcount == 0
        # Nor may it move a container onto another host, or make one there.
        with refused():
            conn.execute(
                "UPDATE containers_container SET host_id = %s WHERE id = %s",
                [hosts[1].pk, containers[0].pk],
            )
    assert Container.objects.get(pk=other).observed_state == "pending"
    assert Container.objects.get(pk=containers[0].pk).host_id == hosts[0].pk


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE rbac_role SET name = 'pwned' WHERE name = 'viewer'",
        "INSERT INTO rbac_rolebinding (user_id, role_id) VALUES (1, 1)",
        # Set back to an older value, a web worker's cached (since revoked) token would pass.
        "UPDATE rbac_authzgeneration SET value = 'old'",
        "UPDATE accounts_user SET is_superuser = true",
        "UPDATE audit_auditevent SET outcome = 'allowed'",
        "DELETE FROM audit_auditevent",
        "UPDATE hosts_host SET revoked_at = NULL",
        "UPDATE hosts_host SET public_key = 'x'",
        "SELECT * FROM django_session",
        "SELECT * FROM accounts_apitoken",
    ],
)
def test_the_agent_cannot_rewrite_rbac_audit_users_or_its_enrolment(fleet, statement):
    hosts, _, roles = fleet
    record_event(action="test.event", outcome="allowed", reason="before")
    before = list(AuditEvent.objects.values_list("hash", flat=True))
    with agent_of(hosts[0], roles) as conn, refused():
        conn.execute(statement)
    assert list(AuditEvent.objects.values_list("hash", flat=True)) == before
    assert Role.objects.filter(name="viewer").exists()


def test_silent_hosts_are_marked_down_only_through_the_narrow_function(fleet):
    hosts, containers, roles = fleet
    Container.objects.filter(pk=containers[1].pk).update(observed_state="running")
    with agent_of(hosts[0], roles) as conn:
        assert (
            conn.execute(
                "UPDATE hosts_host SET state = 'down' WHERE id = %s", [hosts[1].pk]
            ).rowcount
            == 0
        )
        conn.execute("SELECT berth_mark_hosts_down(now())")
    assert Host.objects.get(pk=hosts[1].pk).state == "down"
    assert Container.objects.get(pk=containers[1].pk).observed_state == "unknown"


def test_a_revoked_host_can_no_longer_log_in(fleet):
    hosts, _, roles = fleet
    with agent_of(hosts[1], roles):
        pass
    call_command("agent_db_role", "--revoke", hosts[1].name, stdout=io.StringIO())
    role = dbroles.role_name(hosts[1].pk)
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", [role])
        assert cursor.fetchone() == (False,)
        cursor.execute(
            "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
            "WHERE r.rolname = %s",
            [role],
        )
        assert cursor.fetchone() == (0,)


def test_sqlite_is_refused_with_a_reason(settings):
    if connection.vendor == "postgresql":
        pytest.skip("the SQLite message")
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="need PostgreSQL"):
        call_command("agent_db_role", "--setup")


def test_heartbeat_marks_hosts_down_through_the_function_as_an_agent(fleet, settings):
    from datetime import timedelta

    from agent import heartbeat
    from django.utils import timezone

    hosts, containers, roles = fleet
    Host.objects.filter(pk=hosts[0].pk).update(last_heartbeat=timezone.now())
    Host.objects.filter(pk=hosts[1].pk).update(last_heartbeat=timezone.now() - timedelta(hours=1))
    Container.objects.filter(pk=containers[1].pk).update(observed_state="running")
    with agent_of(hosts[0], roles):
        saved = connection.settings_dict["USER"]
        connection.settings_dict["USER"] = dbroles.role_name(hosts[0].pk)
        try:
            assert heartbeat.mark_down() == 1
        finally:
            connection.settings_dict["USER"] = saved
    assert Host.objects.get(pk=hosts[1].pk).state == "down"
    assert Container.objects.get(pk=containers[1].pk).observed_state == "unknown"
