"""Dashboard view tests: named users, two teams, one host and a private Redis; prefix `td`."""

import shutil
import socket
import subprocess
import time

import pytest
from dash_helpers import PASSWORD, make_container
from django.test import Client

from accounts.models import Membership, Team, User
from config.celery import app as celery_app
from hosts.models import Host
from rbac.models import Role, RoleBinding

GLOBAL_ROLES = {"admin": "admin", "operator": "operator", "viewer": "viewer", "auditor": "auditor"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def td_redis(tmp_path_factory):
    """A private redis-server on a free loopback port, stopped by its PID at the end."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed")
    port = _free_port()
    workdir = tmp_path_factory.mktemp("td-redis")
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
def td_broker(td_redis):
    """Celery talks to the private Redis during each test (tasks queue there; no worker runs)."""
    old = (celery_app.conf.broker_url, celery_app.conf.result_backend)
    celery_app.conf.broker_url = td_redis
    celery_app.conf.result_backend = td_redis
    yield td_redis
    celery_app.conf.broker_url, celery_app.conf.result_backend = old


@pytest.fixture
def teams(db):
    """Two teams: alpha and beta."""
    return {
        "alpha": Team.objects.create(name="td-alpha"),
        "beta": Team.objects.create(name="td-beta"),
    }


@pytest.fixture
def host(db):
    """One host."""
    return Host.objects.create(name="td-h1", state=Host.State.UP)


@pytest.fixture
def users(db, teams):
    """admin, operator, viewer, auditor (global), developer (alpha), rando (no role)."""
    people = {}
    for name in ("admin", "operator", "developer", "viewer", "auditor", "rando"):
        people[name] = User.objects.create_user(username=f"td-{name}", password=PASSWORD)
    for name, role in GLOBAL_ROLES.items():
        RoleBinding.objects.create(user=people[name], role=Role.objects.get(name=role))
    RoleBinding.objects.create(
        user=people["developer"], role=Role.objects.get(name="developer"), scope_team=teams["alpha"]
    )
    Membership.objects.create(team=teams["alpha"], user=people["developer"])
    return people


@pytest.fixture
def login(users):
    """login("viewer") -> a Django test Client with that user's session."""

    def make(name):
        client = Client()
        client.force_login(users[name])
        return client

    return make


@pytest.fixture
def containers(teams, host):
    """A running container of alpha and a stopped one of beta."""
    return {
        "alpha": make_container(
            teams["alpha"],
            host,
            "td-web-a",
            labels={"app": "web"},
            observed_state="running",
            desired_state="running",
        ),
        "beta": make_container(
            teams["beta"], host, "td-web-b", observed_state="stopped", desired_state="stopped"
        ),
    }
