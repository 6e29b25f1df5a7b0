"""`manage.py agent_db_role`: PostgreSQL credentials of least privilege for host agents."""

import secrets
from pathlib import Path
from urllib.parse import quote

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from agent import dbroles
from hosts.models import Host
from trust.keys import write_secret


class Command(BaseCommand):
    """Set up the agents' group role and policies, and give one host's agent its own role."""

    help = (
        "On PostgreSQL: --setup creates the berth_agents group, its grants and row-level "
        "policies (idempotent); --host NAME creates or re-keys that host's role and prints the "
        "DATABASE_URL its agent must use (or writes it to --output, mode 600); --revoke NAME "
        "takes a removed host's access away."
    )

    def add_arguments(self, parser):
        parser.add_argument("--setup", action="store_true")
        parser.add_argument("--host", default=None)
        parser.add_argument("--revoke", default=None)
        parser.add_argument("--output", default=None, help="file for the agent's DATABASE_URL")

    def handle(self, *args, setup, host, revoke, output, **options):
        if connection.vendor != "postgresql":
            raise CommandError(
                "agent database roles need PostgreSQL; on SQLite the agents share the web's "
                "database file (one machine only, see docs/agent.md)"
            )
        if not (setup or host or revoke):
            raise CommandError("say what to do: --setup, --host NAME or --revoke NAME")
        with transaction.atomic(), connection.cursor() as cursor:
            if setup:
                for statement in dbroles.setup_statements():
                    cursor.execute(statement)
                self.stdout.write(f"group role {dbroles.GROUP}: grants and policies in place")
            if host:
                row = self._host(host)
                password = secrets.token_urlsafe(24)
                for statement in dbroles.role_statements(row.pk, password):
                    cursor.execute(statement)
                url = self._url(dbroles.role_name(row.pk), password)
                if output:
                    write_secret(Path(output), url)
                    self.stdout.write(f"DATABASE_URL of host {host!r} written to {output}")
                else:
                    self.stdout.write(url)
            if revoke:
                row = self._host(revoke)
                for statement in dbroles.revoke_statements(row.pk):
                    cursor.execute(statement)
                self.stdout.write(f"host {revoke!r}: its database role can no longer log in")

    def _host(self, name) -> Host:
        row = Host.objects.filter(name=name).first()
        if row is None:
            raise CommandError(f"no host named {name!r}")
        return row

    def _url(self, role: str, password: str) -> str:
        db = connection.settings_dict
        where = db.get("HOST") or "localhost"
        port = f":{db['PORT']}" if db.get("PORT") else ""
        return f"postgres://{role}:{quote(password, safe='')}@{where}{port}/{db['NAME']}"
