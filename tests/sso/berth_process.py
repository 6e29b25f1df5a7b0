"""A Berth web server for the browser tests: its own data directory (SQLite), test settings,
OIDC pointed at the test provider; daphne's runserver on a loopback port, stopped by its PID."""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from tests.migrated_db import migrated_sqlite
from tests.sso.sso_helpers import stop_process

REPO = Path(__file__).resolve().parents[2]
PY = Path(sys.executable)

SEED = """
from accounts.models import Team
from directory.models import GroupMapping
from rbac.models import Role
alpha = Team.objects.create(name="ts-web-alpha")
GroupMapping.objects.create(source="oidc", group="ts-devs", team=alpha, role=Role.objects.get(name="developer"))
print("seeded")
"""


class BerthWeb:
    """One Berth web process (no agent: sign-in needs none)."""

    def __init__(self, port: int, oidc: dict):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.data = Path(tempfile.mkdtemp(prefix="berth-ts-web-"))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "BERTH_"))}
        self.env.update(
            DJANGO_SETTINGS_MODULE="config.settings.test",
            BERTH_DATA_DIR=str(self.data),
            BERTH_CONTROL_KEY_FILE=str(self.data / "control.key"),
            PYTHONPATH=f"{REPO / 'platform'}:{REPO}",
            BERTH_OIDC_ISSUER=oidc["ISSUER"],
            BERTH_OIDC_CLIENT_ID=oidc["CLIENT_ID"],
            BERTH_OIDC_CLIENT_SECRET=oidc["CLIENT_SECRET"],
        )
        self.proc = None

    def manage(self, *args) -> str:
        result = subprocess.run(
            [str(PY), "manage.py", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode:
            raise RuntimeError(result.stderr[-3000:])
        return result.stdout

    def start(self) -> "BerthWeb":
        migrated_sqlite(
            self.data / "berth.sqlite3",
            lambda: self.manage("migrate", "--noinput", "--skip-checks", "-v0"),
        )
        self.manage("shell", "-c", SEED)
        self.log = open(self.data / "web.log", "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            [
                str(PY),
                "manage.py",
                "runserver",
                "--noreload",
                "--insecure",
                f"127.0.0.1:{self.port}",
            ],
            cwd=REPO,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.data / "web.log").read_text()[-3000:])
            try:
                if requests.get(f"{self.url}/login/", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError("Berth's web server did not answer")

    def audit(self) -> list[tuple]:
        """(action, outcome, actor, reason, summary) of every audit event, oldest first."""
        out = self.manage(
            "shell",
            "-c",
            "import json\nfrom audit.models import AuditEvent\n"
            "print(json.dumps([[e.action, e.outcome, e.actor, e.reason, e.summary] "
            "for e in AuditEvent.objects.order_by('seq')]))",
        )
        import json

        return [tuple(row) for row in json.loads(out.strip().splitlines()[-1])]

    def stop(self) -> None:
        """Stop the server by its PID and remove its data directory."""
        import shutil

        stop_process(self.proc, getattr(self, "log", None))
        shutil.rmtree(self.data, ignore_errors=True)
