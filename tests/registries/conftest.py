"""Fixtures of the registries tests (prefix `tr`): named users, a host, a real Redis.

The end-to-end fixtures (`stack`, `web`) and the registry servers come from the agent's
tests/e2e/conftest.py and the runtime's tests/registry/registry_helpers.py, imported, not copied.
"""

import importlib.util
import sys
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from accounts.models import Membership, Team, User
from config.celery import app as celery_app
from hosts.models import Host
from rbac.models import Role, RoleBinding

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "registry"))  # registry_helpers, as tests/registry imports it


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_e2e = _load("tr_e2e_conftest", TESTS / "e2e" / "conftest.py")
redis_url = _e2e.redis_url
stack = _e2e.stack
web = _e2e.web
_registry_fixtures = _load("tr_registry_conftest", TESTS / "registry" / "conftest.py")
registry = _registry_fixtures.registry
token_registry = _registry_fixtures.token_registry


@pytest.fixture
def broker(redis_url):
    """Point the Celery app at the test Redis for one test (and back afterwards)."""
    old = (celery_app.conf.broker_url, celery_app.conf.result_backend)
    celery_app.conf.broker_url = redis_url
    celery_app.conf.result_backend = redis_url
    yield redis_url
    celery_app.conf.broker_url, celery_app.conf.result_backend = old


@pytest.fixture
def teams(db):
    """Two teams: alpha and beta."""
    return {
        "alpha": Team.objects.create(name="tr-alpha"),
        "beta": Team.objects.create(name="tr-beta"),
    }


@pytest.fixture
def host(db):
    """One host (its agent is not running: operations stay pending)."""
    return Host.objects.create(name="tr-h1", state=Host.State.UP)


@pytest.fixture
def users(db, teams):
    """admin, operator, viewer (global), developer (team alpha), rando (no role)."""
    people = {}
    for name in ("admin", "operator", "developer", "viewer", "rando"):
        people[name] = User.objects.create_user(username=f"tr-{name}", password=f"{name}-pw-1x")
    for name in ("admin", "operator", "developer", "viewer"):
        scope = {"scope_team": teams["alpha"]} if name == "developer" else {}
        RoleBinding.objects.create(user=people[name], role=Role.objects.get(name=name), **scope)
    Membership.objects.create(team=teams["alpha"], user=people["developer"])
    return people


@pytest.fixture
def api(users, broker, host):
    """api("developer") -> an APIClient logged in as that user (None: anonymous)."""

    def make(name=None):
        client = APIClient()
        if name:
            client.force_login(users[name])
        return client

    return make
