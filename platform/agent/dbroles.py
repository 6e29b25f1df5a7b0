"""Least privilege for host agents on PostgreSQL: a database role per host, rows of its host only.

A host agent runs as root on its machine; if that machine is taken, its database credentials
must not rewrite who may do what (RBAC, users, tokens), the audit trail, or another host's
rows. Each agent therefore connects as its own role `berth_agent_<host id>`, a member of the
group `berth_agents`, which holds:

- SELECT on what the agent reads, except sessions, API tokens and join tokens;
- INSERT, UPDATE, DELETE on the rows of its own host only (containers, operations, images,
  volumes, networks, progress), enforced by row-level security policies;
- UPDATE of its own Host row's heartbeat columns only (never `revoked_at` or `public_key`);
- INSERT into the audit log and UPDATE of the chain head (the append itself): events can never
  be changed (triggers refuse it for everyone);
- EXECUTE on one narrow function that marks silent hosts down (the one write an agent makes
  about other hosts), owned by the web's role.

The web's role owns the tables, so row-level security does not apply to it. SQLite has no roles:
there agents share the web's database file, which only suits a single machine (docs/agent.md).
"""

from django.apps import apps

GROUP = "berth_agents"
ROLE_PREFIX = "berth_agent_"
HOST_SCOPED = [
    ("containers", "Container"),
    ("operations", "Operation"),
    ("images", "Image"),
    ("volumes", "Volume"),
    ("networks", "Network"),
]
PRIVATE = [("sessions", "Session"), ("accounts", "ApiToken"), ("hosts", "JoinToken")]
HEARTBEAT_COLUMNS = ("state", "last_heartbeat", "info")


def _table(app_label: str, model: str) -> str | None:
    try:
        return apps.get_model(app_label, model)._meta.db_table
    except LookupError:
        return None  # an optional app or a model that does not exist (yet)


def role_name(host_id: int) -> str:
    """The database role of the agent of host `host_id`."""
    return f"{ROLE_PREFIX}{int(host_id)}"


def mark_down_function() -> str:
    """The one write an agent makes about other hosts: silent hosts are down, and what they
    run is unknown until their agent reports again (mirrors agent/heartbeat.mark_down)."""
    host_table, containers = _table("hosts", "Host"), _table("containers", "Container")
    return (
        "CREATE OR REPLACE FUNCTION berth_mark_hosts_down(cutoff timestamptz) RETURNS integer "
        "LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$ "
        "DECLARE changed integer; BEGIN "
        f"CREATE TEMP TABLE IF NOT EXISTS berth_down (id bigint) ON COMMIT DROP; "
        f"WITH down AS (UPDATE {host_table} SET state = 'down' WHERE state = 'up' "
        "AND (last_heartbeat IS NULL OR last_heartbeat < cutoff) RETURNING id) "
        "INSERT INTO berth_down SELECT id FROM down; "
        "GET DIAGNOSTICS changed = ROW_COUNT; "
        f"UPDATE {containers} SET observed_state = 'unknown' WHERE host_id IN "
        "(SELECT id FROM berth_down) AND observed_state NOT IN ('removed', 'pending'); "
        "DELETE FROM berth_down; RETURN changed; END $$"
    )


def setup_statements() -> list[str]:
    """Idempotent SQL that creates the group, its grants, the policies and the functions."""
    host_table = _table("hosts", "Host")
    audit, head = _table("audit", "AuditEvent"), _table("audit", "ChainHead")
    progress = _table("registries", "OperationProgress")
    op_table = _table("operations", "Operation")
    sql = [
        f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{GROUP}') "
        f"THEN CREATE ROLE {GROUP} NOLOGIN; END IF; END $$",
        # The agent's host, from its role's name (a role cannot rename itself).
        "CREATE OR REPLACE FUNCTION berth_agent_host() RETURNS bigint LANGUAGE sql STABLE AS $$ "
        f"SELECT CASE WHEN current_user ~ '^{ROLE_PREFIX}[0-9]+$' "
        f"THEN substring(current_user from {len(ROLE_PREFIX) + 1})::bigint END $$",
        f"GRANT USAGE ON SCHEMA public TO {GROUP}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {GROUP}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {GROUP}",
    ]
    for app_label, model in PRIVATE:
        table = _table(app_label, model)
        if table:
            sql.append(f"REVOKE ALL ON {table} FROM {GROUP}")
    scoped = [_table(a, m) for a, m in HOST_SCOPED]
    for table in scoped:
        sql += _host_policy(table, "host_id = berth_agent_host()")
    if progress:
        sql += _host_policy(
            progress,
            f"operation_id IN (SELECT id FROM {op_table} WHERE host_id = berth_agent_host())",
        )
    sql += [
        f"GRANT UPDATE ({', '.join(HEARTBEAT_COLUMNS)}) ON {host_table} TO {GROUP}",
        f"ALTER TABLE {host_table} ENABLE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS berth_agent_read ON {host_table}",
        f"CREATE POLICY berth_agent_read ON {host_table} FOR SELECT TO {GROUP} USING (true)",
        f"DROP POLICY IF EXISTS berth_agent_own ON {host_table}",
        f"CREATE POLICY berth_agent_own ON {host_table} FOR UPDATE TO {GROUP} "
        "USING (id = berth_agent_host()) WITH CHECK (id = berth_agent_host())",
        f"GRANT INSERT ON {audit} TO {GROUP}",
        f"GRANT UPDATE (seq, last_hash) ON {head} TO {GROUP}",
        f"GRANT INSERT ON {head} TO {GROUP}",
        mark_down_function(),
        "REVOKE ALL ON FUNCTION berth_mark_hosts_down(timestamptz) FROM PUBLIC",
        f"GRANT EXECUTE ON FUNCTION berth_mark_hosts_down(timestamptz) TO {GROUP}",
    ]
    return sql


def _host_policy(table: str, condition: str) -> list[str]:
    """Rows of the agent's own host only, for reading and writing alike."""
    return [
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {GROUP}",
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS berth_agent_host ON {table}",
        f"CREATE POLICY berth_agent_host ON {table} FOR ALL TO {GROUP} "
        f"USING ({condition}) WITH CHECK ({condition})",
    ]


def role_statements(host_id: int, password: str) -> list[str]:
    """SQL that creates (or re-keys) the role of one host's agent."""
    role = role_name(host_id)
    quoted = password.replace("'", "''")
    return [
        f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') "
        f"THEN CREATE ROLE {role} LOGIN; END IF; END $$",
        f"ALTER ROLE {role} LOGIN PASSWORD '{quoted}'",
        f"GRANT {GROUP} TO {role}",
    ]


def revoke_statements(host_id: int) -> list[str]:
    """SQL that takes a removed host's database access away (its role can no longer log in)."""
    role = role_name(host_id)
    return [
        f"DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') "
        f"THEN ALTER ROLE {role} NOLOGIN; REVOKE {GROUP} FROM {role}; END IF; END $$",
        # Sessions it has open end now, not when they would next reconnect.
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'",
    ]
