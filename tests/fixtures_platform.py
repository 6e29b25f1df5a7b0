"""Fixtures shared by the platform and dashboard tests: a private Redis, named users and teams.

A conftest imports the fixtures it wants from here (pytest collects fixtures found in a
conftest's namespace) and overrides `area` with its own short prefix and account names:
`area` returns an Area(prefix, username, password) where username and password map a role
name ("admin", ..., "rando") to the account's login.
"""

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from accounts.models import Membership, Team, User
from config.celery import app as celery_app
from hosts.models import Host
from rbac.models import Role, RoleBinding

# The named users; each but the developer and rando has the global role of its name.
NAMES = ("admin", "operator", "developer", "viewer", "auditor", "rando")
GLOBAL_ROLES = ("admin", "operator", "viewer", "auditor")


@dataclass(frozen=True)
class Area:
    """A test area's resource prefix and how its named accounts are called and log in."""

    prefix: str
    username: Callable[[str], str]
    password: Callable[[str], str]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A private redis-server on a free loopback port, stopped by its PID at the end."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        + ["--appendonly", "no", "--dir", str(workdir)],
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
def area():
    """Overridden by each conftest: its prefix and account names."""
    return Area("tx", lambda name: f"tx-{name}", lambda name: f"{name}-password-1")


@pytest.fixture
def teams(db, area):
    """Two teams: alpha and beta."""
    return {
        "alpha": Team.objects.create(name=f"{area.prefix}-alpha"),
        "beta": Team.objects.create(name=f"{area.prefix}-beta"),
    }


@pytest.fixture
def host(db, area):
    """One host that is up (no agent consumes its queue: operations stay pending)."""
    return Host.objects.create(name=f"{area.prefix}-h1", state=Host.State.UP)


@pytest.fixture
def users(db, teams, area):
    """admin, operator, viewer, auditor (global roles), developer (alpha), rando (nothing)."""
    people = {
        name: User.objects.create_user(username=area.username(name), password=area.password(name))
        for name in NAMES
    }
    for name in GLOBAL_ROLES:
        RoleBinding.objects.create(user=people[name], role=Role.objects.get(name=name))
    RoleBinding.objects.create(
        user=people["developer"], role=Role.objects.get(name="developer"), scope_team=teams["alpha"]
    )
    Membership.objects.create(team=teams["alpha"], user=people["developer"])
    return people
