"""Named users, two teams, one host, a real throwaway Redis; every test area uses prefix `tp`.

The shared fixtures (redis_url, broker, teams, host, users) live in tests/fixtures_platform.py.
"""

import pytest
from rest_framework.test import APIClient

from config.celery import app as celery_app
from tests.fixtures_platform import Area, broker, free_port, host, redis_url, teams, users
from tests.platform.factories import make_container

__all__ = ["broker", "host", "redis_url", "teams", "users"]  # fixtures, found by pytest here


@pytest.fixture
def area():
    """Prefix `tp`; the accounts are called by their role name."""
    return Area("tp", lambda name: name, lambda name: f"{name}-password-1")


@pytest.fixture
def broker_down(broker):
    """A broker URL pointing at a closed loopback port."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    celery_app.conf.broker_url = url
    yield url
    celery_app.conf.broker_url = broker


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
