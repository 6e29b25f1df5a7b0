#!/usr/bin/env python
"""What one API request costs at 10 containers, in the server's process and through it (issue 19).

The served numbers (bench/versus_docker.py) drift by 20-40 % from run to run on this machine;
the work of one request inside the process drifts far less. A served Berth (production server,
SQLite, 10 idle containers made through the API) is measured two ways:

  in one process   Django's WSGI handler called with the served Berth's settings and database
                   (config.settings.prod, after gc.freeze() as config/http_server.py does),
                   wall and CPU per request: the page of 10, a 404 with a token (authentication
                   and the middleware, no view), and the remove of a stopped container (rows
                   made for it; each response closed, as the server closes it, which sends
                   the host's deletion)
  served           the same page of 10 and 404 through the production server, alternating,
                   with a keep-alive http.client connection

    .venv/bin/python bench/request_cost.py [--requests 1000] [--removes 400] [--database postgres]

(--database postgres: the served Berth's database is a private PostgreSQL cluster, as in
production, instead of its SQLite file.)

(as root: the served Berth runs containers).
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import Berth, _prod_conn, clean_up, fill  # noqa: E402
from served_berth import PROD_HEADERS, PY, REPO, SERVER_ENV, ServedBerth, private_database  # noqa: E402

sys.path.insert(0, str(REPO))  # the runtime, for the bench's own Runtime and the image

INNER = r"""
import gc, io, logging, os, resource, statistics, sys, time
import django
django.setup()
import config.wsgi
logging.getLogger("django.request").setLevel(logging.ERROR)  # not a line per 404 (after setup)
from containers.models import Container

token, requests, removes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
app = config.wsgi.application


def environ(method, path, query=""):
    return {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8443", "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "127.0.0.1", "HTTP_X_FORWARDED_PROTO": "https",
            "HTTP_AUTHORIZATION": f"Bearer {token}", "wsgi.input": io.BytesIO(b""),
            "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr}


def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def call(method, path, query, expect):
    status = []
    wall, used = time.perf_counter(), cpu()
    response = app(environ(method, path, query), lambda s, h, e=None: status.append(s))
    b"".join(response)
    response.close()  # as the server does once the body is out
    wall, used = time.perf_counter() - wall, cpu() - used
    assert status[0].startswith(expect), (path, status)
    return 1000 * wall, 1000 * used


def report(name, samples):
    walls, cpus = [s[0] for s in samples], [s[1] for s in samples]
    print(f"{name}: wall median {statistics.median(walls):.3f} ms, "
          f"p25 {statistics.quantiles(walls, n=4)[0]:.3f} ms, "
          f"p99 {statistics.quantiles(walls, n=100)[98]:.3f} ms, mean {statistics.mean(walls):.3f} ms; "
          f"CPU {statistics.mean(cpus):.3f} ms per request ({len(samples)})", flush=True)


template = Container.objects.filter(name="rc0").first()
stopped = [
    Container.objects.create(
        team=template.team, host=template.host, name=f"rcgone{i}", image="busybox",
        spec=template.spec, desired_state="stopped", observed_state="stopped",
        created_by=template.created_by,
    ).pk
    for i in range(removes + 50)
]
gc.collect()
gc.freeze()
kinds = {
    "page of 10 (in one process)": ("GET", "/api/v1/containers/", "page_size=10", "200"),
    "404 with a token (in one process)": ("GET", "/api/v1/nope/", "", "404"),
}
for method, path, query, expect in kinds.values():
    for _ in range(50):
        call(method, path, query, expect)
for name, (method, path, query, expect) in kinds.items():
    report(name, [call(method, path, query, expect) for _ in range(requests)])
for pk in stopped[:50]:  # warm
    call("DELETE", f"/api/v1/containers/{pk}/", "wait=60", "200")
report("remove of a stopped container (in one process)",
       [call("DELETE", f"/api/v1/containers/{pk}/", "wait=60", "200") for pk in stopped[50:]])
"""


def served(berth: Berth, requests: int) -> None:
    """The page of 10 and a 404 through the production server, alternating."""
    conn = _prod_conn(berth)
    auth = {**berth.auth, **PROD_HEADERS}

    def get(path):
        start = time.perf_counter()
        conn.request("GET", path, headers=auth)
        response = conn.getresponse()
        response.read()
        return 1000 * (time.perf_counter() - start), response.status

    paths = {"page of 10 (served)": "/api/v1/containers/?page_size=10",
             "404 with a token (served)": "/api/v1/nope/"}  # fmt: skip
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(50):
        for path in paths.values():
            get(path)
    for _ in range(requests):
        for name, path in paths.items():
            ms, status = get(path)
            assert status in (200, 404), status
            samples[name].append(ms)
    for name, ms in samples.items():
        print(f"{name}: median {statistics.median(ms):.3f} ms, "
              f"p25 {statistics.quantiles(ms, n=4)[0]:.3f} ms, "
              f"p99 {statistics.quantiles(ms, n=100)[98]:.3f} ms, "
              f"mean {statistics.mean(ms):.3f} ms ({len(ms)})")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--removes", type=int, default=400)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="berth-reqcost-"))
    (base / "berth").mkdir()
    pg = private_database(base, args.database)
    berth_served = None
    try:
        url = pg.start() if pg is not None else ""
        berth_served = ServedBerth(base / "berth", "config.settings.dev", database_url=url)
        berth_served.start(["runserver", "prod"])
        berth = Berth(berth_served)
        fill(berth.conn, berth.api_create, [f"rc{i}" for i in range(10)], 4)
        time.sleep(5)  # the fill's after-work (the agent's observations)
        served(berth, args.requests)
        env = {**berth_served.env, **SERVER_ENV["prod"](0)}
        subprocess.run(
            [str(PY), "-c", INNER, berth_served.token, str(args.requests), str(args.removes)],
            cwd=REPO / "platform", env=env, check=True,
        )  # fmt: skip
    finally:
        clean_up(base, None, berth_served, database=pg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
