"""Security review tests (prefix `ts`): the shared named users, teams, host and private Redis.

Fixtures come from tests/fixtures_platform.py (imported, not copied). Every test ends by
verifying the audit hash chain it wrote to.
"""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import ApiToken
from audit.services import verify_chain
from tests.fixtures_platform import Area, broker, host, redis_url, teams, users
from tests.platform.factories import make_container

__all__ = ["broker", "host", "redis_url", "teams", "users"]  # fixtures, found by pytest here

PASSWORD = "ts-password-1"


@pytest.fixture
def area():
    """Prefix `ts`; accounts ts-<role> with one password."""
    return Area("ts", lambda name: f"ts-{name}", lambda name: PASSWORD)


@pytest.fixture(autouse=True)
def chain_intact(request):
    """After each test that touched the database, the audit hash chain still verifies."""
    yield
    if "django_db_setup" in request.fixturenames or "db" in request.fixturenames:
        assert verify_chain() == []


@pytest.fixture
def api(users):
    """api("developer") -> an APIClient with that user's session (None: anonymous)."""

    def make(name=None):
        client = APIClient()
        if name:
            client.force_login(users[name])
        return client

    return make


@pytest.fixture
def page(users):
    """page("viewer") -> a Django test Client with that user's session."""

    def make(name=None, *, csrf=False):
        client = Client(enforce_csrf_checks=csrf)
        if name:
            client.force_login(users[name])
        return client

    return make


@pytest.fixture
def bearer(users):
    """bearer("developer", read_only=True) -> (APIClient with a fresh token, secret)."""

    def make(name, **kwargs):
        _, secret = ApiToken.issue(users[name], f"ts-{name}-{len(kwargs)}", **kwargs)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        return client, secret

    return make


@pytest.fixture
def containers(teams, host):
    """A running container of alpha and one of beta."""
    return {
        team: make_container(
            teams[team],
            host,
            f"ts-web-{team[0]}",
            observed_state="running",
            desired_state="running",
        )
        for team in ("alpha", "beta")
    }
