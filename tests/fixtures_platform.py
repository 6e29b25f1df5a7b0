"""Fixtures shared by the platform and dashboard tests: a private Redis, named users and teams.

A conftest imports the fixtures it wants from here (pytest collects fixtures found in a
conftest's namespace) and overrides `area` with its own short prefix and account names:
`area` returns an Area(prefix, username, password) where username and password map a role
name ("admin", ..., "rando") to the account's login.
"""

import shutil
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import redis

from accounts.models import Membership, Team, User
from config.celery import app as celery_app
from hosts.models import Host
from rbac.models import Role, RoleBinding
from tests.redis_server import RedisServer
from tests.redis_server import free_port as free_port  # the conftests import it from here

# The named users; each but the developer and rando has the global role of its name.
NAMES = ("admin", "operator", "developer", "viewer", "auditor", "rando")
GLOBAL_ROLES = ("admin", "operator", "viewer", "auditor")


@dataclass(frozen=True)
class Area:
    """A test area's resource prefix and how its named accounts are called and log in."""

    prefix: str
    username: Callable[[str], str]
    password: Callable[[str], str]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A private redis-server with a password on a free loopback port, stopped by its PID."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed")
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def broker(redis_url):
    """Point the Celery app at the private Redis for each test (and back afterwards)."""
    old = (celery_app.conf.broker_url, celery_app.conf.result_backend)
    celery_app.conf.broker_url = redis_url
    celery_app.conf.result_backend = redis_url
    # Messages an earlier test queued for a host (no agent consumes them here) must not be
    # counted by the next one: every test starts with empty host queues.
    client = redis.Redis.from_url(redis_url)
    try:
        stale = list(client.scan_iter(match="host.*", count=1000))
        if stale:
            client.delete(*stale)
    finally:
        client.close()
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
