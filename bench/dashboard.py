#!/usr/bin/env python
"""Dashboard speed with 500 containers: server time of the pages, next to the API list, and
the time until the container list is usable in headless Chromium (Navigation Timing).

Builds a throwaway SQLite database (500 containers in 10 teams, bulk_create), then
  1. server time (Django test client: middleware, session, gate, template; no network) of
     the dashboard, the container list page, its live-rows fragment and GET /api/v1/containers/,
     for an admin (all 500) and a developer (one team's 50): medians of --runs;
  2. starts daphne (`manage.py runserver --insecure`) on that database and loads the list page
     --browser-runs times in Debian's Chromium: responseEnd, domInteractive and
     domContentLoadedEventEnd (deferred scripts, htmx included, have run: the page is usable).
Targets: 50 ms server, 500 ms until usable.

    .venv/bin/python bench/dashboard.py [--containers 500] [--runs 30] [--browser-runs 10]
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("BERTH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "bench-password-1"


def setup_django(data_dir: str) -> None:
    """Settings on a fresh SQLite file under `data_dir`, migrated."""
    sys.path[:0] = [str(REPO / "platform"), str(REPO)]
    os.environ["BERTH_DATA_DIR"] = data_dir
    os.environ.pop("DATABASE_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    import django

    django.setup()
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    setup_test_environment()
    call_command("migrate", verbosity=0, skip_checks=True)


def fill(n_containers: int, n_teams: int) -> None:
    """admin, dev (developer of team-0), teams, one host, containers in five states."""
    from accounts.models import Membership, Team, User
    from containers.models import Container
    from hosts.models import Host
    from rbac.models import Role, RoleBinding

    host = Host.objects.create(name="bench", state="up")
    teams = Team.objects.bulk_create([Team(name=f"team-{i}") for i in range(n_teams)])
    admin = User.objects.create_user("admin", password=PASSWORD)
    RoleBinding.objects.create(user=admin, role=Role.objects.get(name="admin"))
    dev = User.objects.create_user("dev", password=PASSWORD)
    Membership.objects.create(team=teams[0], user=dev)
    RoleBinding.objects.create(
        user=dev, role=Role.objects.get(name="developer"), scope_team=teams[0]
    )
    states = ["running", "stopped", "created", "paused", "ghost"]
    Container.objects.bulk_create(
        Container(
            team=teams[i % n_teams],
            host=host,
            name=f"svc-{i:04d}",
            image="busybox",
            spec={"image": "busybox", "name": f"svc-{i:04d}", "labels": {"tier": "web"}},
            labels={"tier": "web"},
            desired_state="running",
            observed_state=states[i % len(states)],
        )
        for i in range(n_containers)
    )


def median_ms(fn, runs: int) -> float:
    """Median wall time of fn() in milliseconds (after one warm-up call)."""
    fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def server_times(runs: int) -> dict:
    """{(user, what): median ms} through the test client."""
    from django.test import Client

    from accounts.models import User

    out = {}
    for username in ("admin", "dev"):
        client = Client()
        client.force_login(User.objects.get(username=username))
        pages = {
            "dashboard page": ("/", {}),
            "container list page": ("/containers/", {}),
            "list rows (htmx poll)": ("/containers/?partial=rows", {"HTTP_HX_REQUEST": "true"}),
            "API list": ("/api/v1/containers/", {}),
        }
        for what, (path, headers) in pages.items():

            def get(path=path, headers=headers, client=client):
                response = client.get(path, **headers)
                assert response.status_code == 200, (path, response.status_code)

            out[(username, what)] = median_ms(get, runs)
    return out


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def browser_times(data_dir: str, runs: int) -> dict | None:
    """Median Navigation Timing marks of the list page in Chromium, or None without a browser."""
    if not Path(CHROMIUM).exists():
        print(f"(no {CHROMIUM}: browser timing skipped)")
        return None
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = dict(os.environ, BERTH_DATA_DIR=data_dir, DJANGO_SETTINGS_MODULE="config.settings.test")
    env["PYTHONPATH"] = f"{REPO / 'platform'}:{REPO}"
    log = open(Path(data_dir) / "web.log", "wb")  # noqa: SIM115 (closed in the finally below)
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", "--insecure", f"127.0.0.1:{port}"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the web server did not start") from None
                time.sleep(0.1)
        base = f"http://127.0.0.1:{port}"
        marks = {
            "responseEnd": [],
            "domInteractive": [],
            "domContentLoadedEventEnd": [],
            "loadEventEnd": [],
        }
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page()
            page.goto(base + "/login/")
            page.fill("#id_username", "admin")
            page.fill("#id_password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(base + "/")
            page.goto(base + "/containers/")  # warm the server and the browser cache
            for _ in range(runs):
                page.goto(base + "/containers/", wait_until="load")
                timing = page.evaluate(
                    "() => performance.getEntriesByType('navigation')[0].toJSON()"
                )
                for mark in marks:
                    marks[mark].append(timing[mark] - timing["startTime"])
            browser.close()
        return {mark: statistics.median(values) for mark, values in marks.items()}
    finally:
        server.terminate()
        server.wait(10)
        log.close()


def main() -> None:
    """Fill, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=500)
    parser.add_argument("--teams", type=int, default=10)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--browser-runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="berth-bench-dash-") as data_dir:
        setup_django(data_dir)
        fill(args.containers, args.teams)
        times = server_times(args.runs)
        print(
            f"\nserver time, {args.containers} containers in {args.teams} teams (median of {args.runs}):"
        )
        print(f"{'':24}{'admin (all)':>19}{'dev (one team)':>19}")
        for what in ("dashboard page", "container list page", "list rows (htmx poll)", "API list"):
            a, d = times[("admin", what)], times[("dev", what)]
            ra, rd = a / times[("admin", "API list")], d / times[("dev", "API list")]
            print(f"{what:24}{a:8.1f} ms (x{ra:.2f}){d:8.1f} ms (x{rd:.2f})   target 50 ms")
        print("(xN: ratio to the API list of the same user)")
        browser = browser_times(data_dir, args.browser_runs) if args.browser_runs > 0 else None
        if browser:
            print(
                f"\ncontainer list page in Chromium, admin, 50 of {args.containers} rows (median of {args.browser_runs}):"
            )
            for mark, value in browser.items():
                print(f"  {mark:26}{value:8.1f} ms")
            usable = browser["domContentLoadedEventEnd"]
            print(
                f"  usable (DOMContentLoaded done): {usable:.1f} ms, target 500 ms: {'met' if usable <= 500 else 'MISSED'}"
            )


if __name__ == "__main__":
    main()
