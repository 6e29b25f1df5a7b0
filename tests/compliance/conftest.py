"""Compliance tests: named users, two teams, one host, a private Redis; prefix `tc`.

`good_spec()` is a container spec that follows every container check; each test breaks one
thing in a copy of it.
"""

import copy

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from containers.models import Container
from images.models import Image
from tests.fixtures_platform import Area, broker, host, redis_url, teams, users

__all__ = ["broker", "host", "redis_url", "teams", "users"]  # fixtures, found by pytest here

GOOD_IMAGE = "tc-good:1"
GOOD_SPEC = {
    "image": GOOD_IMAGE,
    "user": "1000:1000",
    "read_only_rootfs": True,
    "limits": {"memory": 64 * 1024 * 1024, "pids": 128},
    "restart": {"name": "on-failure", "max_retries": 3},
    "namespaces": {"user": "private"},
    "privileged": False,
    "seccomp": True,
    "no_new_privileges": True,
    "cap_add": ["NET_BIND_SERVICE"],
    "network": {"mode": "bridge", "ports": [{"container_port": 80, "host_port": 8080}]},
    "mounts": [
        {"type": "volume", "source": "tc-data", "target": "/data"},
        {"type": "bind", "source": "/srv/tc-app", "target": "/app"},
    ],
}
GOOD_CONFIG = {
    "config": {"User": "app", "Healthcheck": {"Test": ["CMD", "/bin/true"], "Interval": 10**10}}
}


def good_spec(name: str) -> dict:
    """A fresh copy of the spec that passes every container check."""
    spec = copy.deepcopy(GOOD_SPEC)
    spec["name"] = name
    return spec


@pytest.fixture
def area():
    """Prefix `tc`; the accounts are tc-<role>."""
    return Area("tc", lambda name: f"tc-{name}", lambda name: f"{name}-password-1")


@pytest.fixture
def good_image(host):
    """An image on the host that passes every image check."""
    return Image.objects.create(
        host=host,
        image_id="sha256:" + "a" * 64,
        repo_tags=[GOOD_IMAGE],
        config=GOOD_CONFIG,
        created=timezone.now(),
    )


@pytest.fixture
def make_container(host):
    """make_container(team, name, spec) -> a Container row with that stored spec."""

    def make(team, name, spec=None):
        spec = spec or good_spec(name)
        spec["name"] = name
        return Container.objects.create(
            team=team,
            host=host,
            name=name,
            image=spec["image"],
            spec=spec,
            desired_state=Container.Desired.RUNNING,
            observed_state=Container.Observed.RUNNING,
        )

    return make


@pytest.fixture
def api(users):
    """api("admin") -> an APIClient with that user's session."""

    def make(name):
        client = APIClient()
        client.force_login(users[name])
        return client

    return make


@pytest.fixture
def page(users):
    """page("viewer") -> a Django test Client with that user's session."""

    def make(name):
        client = Client()
        client.force_login(users[name])
        return client

    return make
