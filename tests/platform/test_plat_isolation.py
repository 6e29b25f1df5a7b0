"""The web process never imports `runtime`; the policy module never imports Django; prod is --deploy clean."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _python(code: str, env_extra=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = f"{REPO / 'platform'}:{REPO}"
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def test_web_process_never_imports_runtime(tmp_path):
    code = (
        "import os, sys\n"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings.test'\n"
        "import django; django.setup()\n"
        "import config.urls, config.wsgi, config.celery\n"
        "from django.urls import get_resolver; get_resolver().url_patterns\n"
        "from config.celery import app; app.finalize()\n"
        "bad = sorted(m for m in sys.modules if m == 'runtime' or m.startswith('runtime.'))\n"
        "print('RUNTIME', bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = _python(code, {"BERTH_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stdout + result.stderr


def test_policy_module_has_no_django():
    result = _python(
        "import sys, containers.policy, rbac.catalog; sys.exit(1 if 'django' in sys.modules else 0)"
    )
    assert result.returncode == 0, result.stderr


def test_prod_check_deploy_is_clean(tmp_path):
    env = {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "berth.example.com",
        "BERTH_DATA_DIR": str(tmp_path),
    }
    code = (
        "import sys; sys.argv = ['manage.py', 'check', '--deploy', '--fail-level', 'WARNING', "
        "'--settings=config.settings.prod']\n"
        "import runpy; runpy.run_path('manage.py', run_name='__main__')\n"
    )
    result = _python(code, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_prod_refuses_to_start_without_secret(tmp_path):
    code = "import os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings.prod'; import django; django.setup()"
    result = _python(code, {"BERTH_DATA_DIR": str(tmp_path), "DJANGO_ALLOWED_HOSTS": "x"})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr
