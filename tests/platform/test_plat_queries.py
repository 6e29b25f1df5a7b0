"""The container list costs the same number of SQL queries for 5 and for 50 containers."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.platform.factories import make_container

pytestmark = pytest.mark.django_db


def _count(client, url):
    # Warm: the user's grants are then cached across requests (rbac/generation.py) for both
    # counts alike.
    client.get(url)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries), response.json()["count"]


@pytest.mark.parametrize("role", ["admin", "developer", "viewer"])
def test_container_list_constant_queries(api, teams, host, role, django_assert_num_queries):
    for i in range(5):
        make_container(teams["alpha" if i % 2 else "beta"], host, f"tp-q{i}", labels={"n": str(i)})
    few, seen_few = _count(api(role), "/api/v1/containers/?ordering=name")
    for i in range(5, 50):
        make_container(teams["alpha" if i % 2 else "beta"], host, f"tp-q{i}", labels={"n": str(i)})
    client = api(role)
    client.get("/api/v1/containers/?ordering=name")
    with django_assert_num_queries(few):
        response = client.get("/api/v1/containers/?ordering=name")
    assert response.json()["count"] > seen_few
