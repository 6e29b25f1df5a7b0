"""Named users, two teams, one host, a real throwaway Redis; every test area uses prefix `tp`."""

import shutil
import socket
import subprocess
import time

import pytest
from rest_framework.test import APIClient

from accounts.models import Membership, Team, User
from config.celery import app as celery_app
from hosts.models import Host
from rbac.models import Role, RoleBinding
from tests.platform.factories import make_container

ROLE_OF = {
    "admin": "admin",
    "operator": "operator",
    "developer": "developer",
    "viewer": "viewer",
    "auditor": "auditor",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A private redis-server on a free loopback port, stopped by PID at the end."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed")
    port = _free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(autouse=True)
def broker(redis_url):
    """Point the Celery app at the private Redis for each test (and back afterwards)."""
    old = (celery_app.conf.broker_url, celery_app.conf.result_backend)
    celery_app.conf.broker_url = redis_url
    celery_app.conf.result_backend = redis_url
    yield redis_url
    celery_app.conf.broker_url, celery_app.conf.result_backend = old


@pytest.fixture
def broker_down(broker):
    """A broker URL pointing at a closed loopback port."""
    url = f"redis://127.0.0.1:{_free_port()}/0"
    celery_app.conf.broker_url = url
    yield url
    celery_app.conf.broker_url = broker


@pytest.fixture
def teams(db):
    """Two teams: alpha and beta."""
    return {
        "alpha": Team.objects.create(name="tp-alpha"),
        "beta": Team.objects.create(name="tp-beta"),
    }


@pytest.fixture
def host(db):
    """One host with an agent queue."""
    return Host.objects.create(name="tp-h1", state=Host.State.UP)


@pytest.fixture
def users(db, teams):
    """admin, operator, viewer, auditor (global roles), developer (alpha), rando (nothing)."""
    people = {}
    for name in ("admin", "operator", "developer", "viewer", "auditor", "rando"):
        people[name] = User.objects.create_user(username=name, password=f"{name}-password-1")
    for name, role in ROLE_OF.items():
        scope = {"scope_team": teams["alpha"]} if name == "developer" else {}
        RoleBinding.objects.create(user=people[name], role=Role.objects.get(name=role), **scope)
    Membership.objects.create(team=teams["alpha"], user=people["developer"])
    return people


@pytest.fixture
def api(users):
    """api("developer") -> an APIClient logged in (session) as that user."""

    def make(name=None):
        client = APIClient()
        if name:
            client.force_login(users[name])
        return client

    return make


@pytest.fixture
def containers(teams, host):
    """One container of alpha, one of beta."""
    return {
        "alpha": make_container(teams["alpha"], host, "tp-web-a", labels={"app": "web"}),
        "beta": make_container(teams["beta"], host, "tp-web-b"),
    }
