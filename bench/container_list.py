#!/usr/bin/env python
"""Server-side time of the container list API with 500 containers in 10 teams.

Builds a throwaway SQLite database, fills it with bulk_create, and times GET
/api/v1/containers/ through Django's test client (the full middleware, authentication, gate
and serializer; no network) for an admin (sees all) and for a developer (one team's 50).
Prints medians and the SQL query count; the target is a median of 20 ms or less.

    .venv/bin/python bench/container_list.py [--containers 500] [--teams 10] [--runs 50]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def setup_django(data_dir: str) -> None:
    """Point the settings at a fresh SQLite file under `data_dir` and migrate it."""
    sys.path[:0] = [str(REPO / "platform"), str(REPO)]
    os.environ["BERTH_DATA_DIR"] = data_dir
    os.environ.pop("DATABASE_URL", None)  # always the throwaway SQLite file
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    import django

    django.setup()
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    setup_test_environment()  # allows the test client's host name
    call_command("migrate", verbosity=0, skip_checks=True)


def fill(n_containers: int, n_teams: int):
    """Users admin and dev (developer of team-0), teams, one host, containers; returns users."""
    from accounts.models import Membership, Team, User
    from containers.models import Container
    from hosts.models import Host
    from rbac.models import Role, RoleBinding

    host = Host.objects.create(name="bench", state="up")
    teams = Team.objects.bulk_create([Team(name=f"team-{i}") for i in range(n_teams)])
    admin = User.objects.create_user("admin", password="x")
    RoleBinding.objects.create(user=admin, role=Role.objects.get(name="admin"))
    dev = User.objects.create_user("dev", password="x")
    Membership.objects.create(team=teams[0], user=dev)
    RoleBinding.objects.create(
        user=dev, role=Role.objects.get(name="developer"), scope_team=teams[0]
    )
    states = ["running", "stopped", "created", "paused", "ghost"]
    Container.objects.bulk_create(
        [
            Container(
                team=teams[i % n_teams],
                host=host,
                name=f"c{i:04d}",
                image="busybox",
                spec={
                    "image": "busybox",
                    "name": f"c{i:04d}",
                    "command": ["sleep", "1000"],
                    "labels": {"app": f"a{i % 7}"},
                },
                labels={"app": f"a{i % 7}"},
                desired_state="running",
                observed_state=states[i % len(states)],
                runtime_id=f"{i:064x}",
                created_by=admin,
            )
            for i in range(n_containers)
        ],
        batch_size=500,
    )
    return admin, dev


def measure(user, path: str, runs: int) -> tuple[float, int, int]:
    """Median milliseconds of `runs` GETs, the SQL query count of one, and the items returned."""
    from django.db import connection
    from django.test import Client

    client = Client()
    client.force_login(user)
    response = client.get(path)  # warm-up: URL resolver, serializer classes, session
    assert response.status_code == 200, (response.status_code, response.content[:300])
    queries = []
    with connection.execute_wrapper(
        lambda execute, sql, *a: queries.append(sql) or execute(sql, *a)
    ):
        body = client.get(path).json()
    items = len(body.get("results", body) if isinstance(body, dict) else body)
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(path)
        timings.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    return statistics.median(timings), len(queries), items


def main() -> int:
    """Fill, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=500)
    parser.add_argument("--teams", type=int, default=10)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="berth-bench-list-") as data_dir:
        setup_django(data_dir)
        admin, dev = fill(args.containers, args.teams)
        print(
            f"{args.containers} containers in {args.teams} teams, SQLite, median of {args.runs} GETs (server side)"
        )
        print(f"{'who':<10} {'request':<44} {'items':>5} {'queries':>7} {'median ms':>9}")
        results = {}
        for who, user in (("admin", admin), ("developer", dev)):
            for path in ("/api/v1/containers/", "/api/v1/containers/?page_size=500"):
                median, queries, items = measure(user, path, args.runs)
                results[(who, path)] = median
                print(f"{who:<10} {path:<44} {items:>5} {queries:>7} {median:>9.2f}")
        worst = max(results.values())
        print(
            f"target: default page <= 20 ms median; worst default page: "
            f"{max(v for (w, p), v in results.items() if 'page_size' not in p):.2f} ms; worst overall {worst:.2f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
