"""Dashboard view tests: named users, two teams, one host and a private Redis; prefix `td`.

The shared fixtures (redis_url, broker, teams, host, users) live in tests/fixtures_platform.py.
"""

import pytest
from dash_helpers import PASSWORD, make_container
from django.test import Client

from tests.fixtures_platform import Area, broker, host, redis_url, teams, users

__all__ = ["broker", "host", "redis_url", "teams", "users"]  # fixtures, found by pytest here


@pytest.fixture
def area():
    """Prefix `td`; accounts td-<role> with one password."""
    return Area("td", lambda name: f"td-{name}", lambda name: PASSWORD)


@pytest.fixture
def td_broker(broker):
    """The private Redis URL the Celery app uses during this test."""
    return broker


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
