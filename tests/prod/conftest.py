"""A private Redis for the production-server tests (stopped by its PID)."""

import shutil

import pytest

from tests.redis_server import RedisServer


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """A private redis-server with a password on a free loopback port."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed")
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server.url
    finally:
        server.stop()
