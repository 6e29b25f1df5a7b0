"""Named users, two teams, one host and a private Redis (tests/fixtures_platform.py); prefix `tm`."""

import pytest

from tests.fixtures_platform import Area, broker, host, redis_url, teams, users

__all__ = ["broker", "host", "redis_url", "teams", "users"]  # fixtures, found by pytest here


@pytest.fixture
def area():
    """Prefix `tm`; accounts tm-admin, tm-viewer, ..."""
    return Area("tm", lambda name: f"tm-{name}", lambda name: f"{name}-password-1")


@pytest.fixture
def broker_down(broker):
    """The Celery broker URL pointed at a closed loopback port for one test."""
    from config.celery import app as celery_app
    from tests.fixtures_platform import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    celery_app.conf.broker_url = url
    yield url
    celery_app.conf.broker_url = broker
