"""The WSGI module loads what the workers' first requests would (config/warm.py), and opens no
database connection doing it (none may cross the HTTP server's fork)."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import sys
from config.wsgi import application
from django.db import connections
from django.template import engines
opened = [c.alias for c in connections.all(initialized_only=True) if c.connection is not None]
assert not opened, f"database connections opened before the fork: {opened}"
assert "containers.api.views" in sys.modules and "dashboard.views.containers" in sys.modules
cached = engines["django"].engine.template_loaders[0].get_template_cache
assert "base.html" in cached and "dashboard/home.html" in cached, sorted(cached)[:5]
print("warm")
"""


def test_the_wsgi_module_imports_the_urlconf_and_compiles_the_templates_without_a_database():
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="config.settings.test")
    env["PYTHONPATH"] = str(REPO / "platform")
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("warm")
