"""Redis requires a password: how processes find it, what they say when it is wrong, berth-up's files."""

import contextlib
import json
import os
import shutil
import ssl
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from config.redis_url import channel_host, redis_url, split_tls
from operations.dispatch import BROKER_AUTH
from tests.redis_server import answers, free_port

REPO = Path(__file__).resolve().parents[2]
ENV_NAMES = (
    "REDIS_URL",
    "REDIS_PASSWORD",
    "REDIS_PASSWORD_FILE",
    "BERTH_REDIS_HOST",
    "BERTH_REDIS_PORT",
    "BERTH_REDIS_CA_FILE",
)


@pytest.fixture
def clean_env(monkeypatch):
    """No Redis settings from the caller's environment."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def without_password(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=f"{parts.hostname}:{parts.port}").geturl()


# -- the URL every process builds ------------------------------------------------------------


def test_url_from_the_password_file(clean_env, tmp_path):
    (tmp_path / "redis.password").write_text("p/ss+word\n")
    assert redis_url(tmp_path) == "redis://:p%2Fss%2Bword@127.0.0.1:6379/0"


def test_url_without_any_password(clean_env, tmp_path):
    assert redis_url(tmp_path) == "redis://127.0.0.1:6379/0"


def test_environment_wins_over_the_file(clean_env, tmp_path):
    (tmp_path / "redis.password").write_text("from-file")
    clean_env.setenv("REDIS_PASSWORD", "from-env")
    clean_env.setenv("BERTH_REDIS_HOST", "10.0.0.5")
    clean_env.setenv("BERTH_REDIS_PORT", "6380")
    assert redis_url(tmp_path) == "redis://:from-env@10.0.0.5:6380/0"
    secret_file = tmp_path / "elsewhere"
    secret_file.write_text("from-secret-file\n")
    clean_env.setenv("REDIS_PASSWORD_FILE", str(secret_file))
    assert redis_url(tmp_path) == "redis://:from-secret-file@10.0.0.5:6380/0"
    clean_env.setenv("REDIS_URL", "redis://:given@redis:6379/2")
    assert redis_url(tmp_path) == "redis://:given@redis:6379/2"


def test_plain_urls_have_no_tls_options(clean_env):
    assert split_tls("redis://:pw@h:6379/0") == ("redis://:pw@h:6379/0", None)
    assert channel_host("redis://:pw@h:6379/0") == "redis://:pw@h:6379/0"


def test_tls_always_verifies_the_server(clean_env):
    url, options = split_tls("rediss://:pw@h:6380/0?ssl_ca_certs=/etc/ca.pem&ssl_cert_reqs=none")
    assert url == "rediss://:pw@h:6380/0"
    assert options == {"ssl_ca_certs": "/etc/ca.pem", "ssl_cert_reqs": ssl.CERT_REQUIRED}
    clean_env.setenv("BERTH_REDIS_CA_FILE", "/srv/berth-ca.pem")
    assert channel_host("rediss://:pw@h:6380/0") == {
        "address": "rediss://:pw@h:6380/0",
        "ssl_ca_certs": "/srv/berth-ca.pem",
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
    }


# -- a wrong or missing password: a clear 503 ------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("credentials", ["none", "wrong"])
def test_api_says_the_broker_refused_the_credentials(api, host, broker, credentials):
    from config.celery import app as celery_app

    url = without_password(broker)
    if credentials == "wrong":
        url = url.replace("redis://", "redis://:not-the-password@")
    celery_app.conf.broker_url = url
    create = {"team": "tp-alpha", "host": "tp-h1", "spec": {"image": "busybox", "name": "tp-a"}}
    response = api("developer").post("/api/v1/containers/", create, format="json")
    assert response.status_code == 503, response.content
    error = response.json()["error"]
    assert error["message"] == BROKER_AUTH
    assert "credentials" in error["message"] and "var/redis.password" in error["message"]
    assert urlsplit(broker).password not in response.content.decode()


CHECK = """
import django, json
django.setup()
from config.errors import Unavailable
from operations import dispatch
try:
    dispatch.check_broker()
    print(json.dumps({"ok": True}))
except Unavailable as exc:
    print(json.dumps({"ok": False, "message": exc.message}))
"""


def run_check(env: dict) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    base.update(DJANGO_SETTINGS_MODULE="config.settings.test", PYTHONPATH="platform:.")
    done = subprocess.run(
        [sys.executable, "-c", CHECK],
        env=base | env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_processes_read_the_password_file_under_the_data_dir(redis_url, tmp_path):
    parts = urlsplit(redis_url)
    env = {"BERTH_DATA_DIR": str(tmp_path), "BERTH_REDIS_PORT": str(parts.port)}
    refused = run_check(env)
    assert refused["ok"] is False and "refused Berth's credentials" in refused["message"]
    (tmp_path / "redis.password").write_text("not-the-password\n")
    assert "refused Berth's credentials" in run_check(env)["message"]
    (tmp_path / "redis.password").write_text(parts.password + "\n")
    assert run_check(env) == {"ok": True}
    # A Redis that is not there is still "unreachable", not a credentials problem.
    down = run_check(env | {"BERTH_REDIS_PORT": str(free_port())})
    assert down["ok"] is False and "unreachable" in down["message"]


# -- berth-up's shell helpers: the password file and the Redis that requires it -------------


def lib_sh(script: str, **env) -> subprocess.CompletedProcess:
    """Run `script` in bash after sourcing scripts/lib.sh (with this test run's Python)."""
    return subprocess.run(
        ["bash", "-c", f"source scripts/lib.sh\n{script}"],
        cwd=REPO,
        env=os.environ | {"BERTH_VENV": sys.prefix} | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_password_file_is_random_private_and_kept(tmp_path):
    path = tmp_path / "var" / "redis.password"
    done = lib_sh('ensure_redis_password "$F"', F=str(path))
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    password = path.read_text().strip()
    assert len(password) >= 40 and password not in done.stdout + done.stderr
    path.chmod(0o644)
    assert lib_sh('ensure_redis_password "$F"', F=str(path)).returncode == 0
    assert path.read_text().strip() == password and stat.S_IMODE(path.stat().st_mode) == 0o600
    other = tmp_path / "other" / "redis.password"
    lib_sh('ensure_redis_password "$F"', F=str(other))
    assert other.read_text() != path.read_text()


@pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server is not installed")
def test_ensure_redis_requires_the_password_and_hides_it(tmp_path):
    port = free_port()
    password_file = tmp_path / "redis.password"
    redis_dir = tmp_path / "redis"
    script = 'ensure_redis_password "$F" && ensure_redis "$P" "$D" "$F"'
    env = {"F": str(password_file), "P": str(port), "D": str(redis_dir)}
    done = lib_sh(script, **env)
    pid_file = redis_dir / "redis.pid"
    try:
        assert done.returncode == 0, done.stderr
        password = password_file.read_text().strip()
        assert stat.S_IMODE((redis_dir / "redis.conf").stat().st_mode) == 0o600
        pid = int(pid_file.read_text())
        assert password not in Path(f"/proc/{pid}/cmdline").read_text()
        assert password not in Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
        assert not answers(f"redis://127.0.0.1:{port}/0")
        assert not answers(f"redis://:wrong@127.0.0.1:{port}/0")
        assert answers(f"redis://:{password}@127.0.0.1:{port}/0")
        # A second run finds it answering and starts nothing.
        again = lib_sh(script, **env)
        assert again.returncode == 0 and "starting Redis" not in again.stderr
        assert int(pid_file.read_text()) == pid
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), 15)


@pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server is not installed")
def test_ensure_redis_restarts_its_own_passwordless_redis_only(tmp_path):
    port = free_port()
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    pid_file = redis_dir / "redis.pid"
    # A Redis of someone else (no pid file in Berth's dir) is left alone, with a clear error.
    other = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    env = {"F": str(tmp_path / "redis.password"), "P": str(port), "D": str(redis_dir)}
    script = 'ensure_redis_password "$F" && ensure_redis "$P" "$D" "$F"'
    try:
        assert wait_for(lambda: answers(f"redis://127.0.0.1:{port}/0"))
        done = lib_sh(script, **env)
        assert done.returncode != 0 and "refuses the password" in done.stderr
        assert other.poll() is None
    finally:
        other.terminate()
        other.wait(10)
    # Berth's own Redis from before passwords (its pid file in the dir) is restarted with one.
    old = subprocess.run(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        + ["--daemonize", "yes", "--pidfile", str(pid_file), "--dir", str(redis_dir)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    assert old.returncode == 0 and wait_for(lambda: answers(f"redis://127.0.0.1:{port}/0"))
    old_pid = int(pid_file.read_text())
    try:
        done = lib_sh(script, **env)
        assert done.returncode == 0, done.stderr
        password = Path(env["F"]).read_text().strip()
        assert int(pid_file.read_text()) != old_pid
        assert not answers(f"redis://127.0.0.1:{port}/0")
        assert answers(f"redis://:{password}@127.0.0.1:{port}/0")
    finally:
        for pid in {old_pid, int(pid_file.read_text())}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 15)


def wait_for(predicate, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
