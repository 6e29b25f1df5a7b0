"""The PostgreSQL path of backup and restore (pg_dump --format=custom, pg_restore --clean):
a private cluster (initdb as the postgres user) on a free loopback port under /tmp, a site
in one database, `manage.py backup`, `manage.py restore` into a second database that was
cloned from the first right after migrate (an empty install), then the rows compared."""

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.redis_server import free_port

REPO = Path(__file__).resolve().parents[2]
INITDB = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not INITDB, reason="PostgreSQL is not installed (no initdb)"),
    pytest.mark.skipif(shutil.which("restic") is None, reason="restic is not installed"),
]

SITE = """
from django.core.management import call_command
from accounts.models import ApiToken, Team, User
from audit.services import record_event
from rbac.models import Role, RoleBinding
team = Team.objects.create(name="tbpg-red")
role = Role.objects.create(name="tbpg-deployer", permissions=["container.view"])
user = User.objects.create_user("tbpg-alice", password="alice-password-1")
RoleBinding.objects.create(role=role, user=user, scope_team=team)
ApiToken.issue(user, "kept")
for i in range(50):
    record_event(action="test.event", outcome="allowed", reason=f"event {i}", object_id=i)
call_command("backup", "--to", TARGET, "--volumes", "none")
"""
# One process each (a manage.py start costs seconds here): the restore, then the chain's check.
RESTORE = """
from django.core.management import call_command
call_command("restore", SET, "--dry-run")
call_command("restore", SET)
call_command("verify_audit_chain")
"""

QUERIES = {
    "users": "SELECT id, username, password FROM accounts_user ORDER BY id",
    "teams": "SELECT id, name FROM accounts_team ORDER BY id",
    "roles": "SELECT id, name, permissions::text FROM rbac_role ORDER BY id",
    "bindings": "SELECT id, role_id, user_id, scope_team_id FROM rbac_rolebinding ORDER BY id",
    "tokens": "SELECT id, key_hash FROM accounts_apitoken ORDER BY id",
    "audit": "SELECT seq, action, hash FROM audit_auditevent ORDER BY seq",
}


class Cluster:
    """A throwaway PostgreSQL cluster; stop() ends it (pg_ctl, by its data directory)."""

    def __init__(self, base: Path):
        self.bin = Path(INITDB[-1]).parent
        self.dir = base / "pg"
        self.port = free_port()
        self.started = False

    def _as_postgres(self, *argv: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True, capture_output=True)

    def start(self) -> None:
        subprocess.run(["install", "-d", "-o", "postgres", "-m", "700", str(self.dir)], check=True)
        self._as_postgres(str(self.bin / "initdb"), "-D", str(self.dir), "--auth=trust", "-U", "postgres")  # fmt: skip
        self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.dir), "-l", str(self.dir / "log"), "-w",
            "-o", f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off",
            "start",
        )  # fmt: skip
        self.started = True

    def createdb(self, name: str, template: str = "template1") -> str:
        self._as_postgres(
            str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-T", template, name
        )  # fmt: skip
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def rows(self, db: str, query: str) -> str:
        done = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db, "-At"]
            + ["-c", query],
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout

    def stop(self) -> None:
        if self.started:
            self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.dir), "-m", "immediate", "-w", "stop")  # fmt: skip


@pytest.fixture
def cluster():
    base = Path(tempfile.mkdtemp(prefix="tbpg-"))
    base.chmod(0o755)  # the postgres user reaches its cluster below it
    pg = Cluster(base)
    try:
        pg.start()
        yield pg, base
    finally:
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


def _manage(env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"manage.py {args[0]}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_postgres_backup_restore_into_a_second_database(cluster):
    pg, base = cluster
    password = base / "backup.password"
    password.write_text("tbpg-password")
    password.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.test",
        BERTH_DATA_DIR=str(base / "data"),
        BERTH_BACKUP_PASSWORD_FILE=str(password),
        BERTH_RESTIC_CACHE=str(base / "restic-cache"),
        PYTHONPATH=f"{REPO / 'platform'}:{REPO}",
    )
    first = dict(env, DATABASE_URL=pg.createdb("tbpg_a"))
    _manage(first, "migrate", "--noinput", "--skip-checks")
    # The second install: the first one right after migrate (as empty as a fresh install).
    second = dict(env, DATABASE_URL=pg.createdb("tbpg_b", template="tbpg_a"))
    out = _manage(first, "shell", "-c", f"TARGET = {str(base / 'target')!r}\n" + SITE)
    set_dir = out.strip().splitlines()[-1]
    assert (Path(set_dir) / "db.pgdump").is_file()
    out = _manage(second, "shell", "-c", f"SET = {set_dir!r}\n" + RESTORE)
    assert "dry run: nothing was changed" in out and "restored set" in out, out
    assert "audit chain intact" in out, out

    for name, query in QUERIES.items():
        before, after = pg.rows("tbpg_a", query), pg.rows("tbpg_b", query)
        if name == "audit":
            # The restore goes on from the backed-up head: its own event follows it.
            head = json.loads((Path(set_dir) / "manifest.json").read_text())["audit_head"]
            before = "".join(before.splitlines(True)[: head["seq"]])
            assert after.startswith(before) and "backup.restore" in after[len(before) :]
        else:
            assert after == before, name
        assert before.strip(), name
    assert "tbpg-alice" in pg.rows("tbpg_b", QUERIES["users"])
