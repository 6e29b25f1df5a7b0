#!/usr/bin/env python
"""Where a container list request's CPU goes (issue 15): the API list and the dashboard page,
through Django's test client in one process with config.settings.prod, on the same throwaway
Berth as bench/prod_load.py (500 container rows, admin token and session; PostgreSQL from its
own initdb, or SQLite). Prints the CPU time (user+system of this process, which the machine's
other load barely disturbs) per request of each kind, then cProfile's top functions.

    .venv/bin/python bench/list_profile.py [--database postgres] [--requests 300] [--top 30]
        [--only api|page] [--containers 500] [--query ?page_size=10]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from prod_load import ROWS, SESSION, Postgres  # noqa: E402

from tests.prod.prod_server import PY, ProdServer  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

INNER = r"""
import cProfile, io, pstats, resource, sys, time
import django
django.setup()
from django.test import Client

token, cookie, n, top, only, QUERY = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
api = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_ACCEPT="application/json")
page = Client()
page.cookies["sessionid"] = cookie
kinds = {
    "api list": lambda: api.get("/api/v1/containers/" + QUERY, secure=True, HTTP_HOST="127.0.0.1"),
    "page": lambda: page.get("/containers/", secure=True, HTTP_HOST="127.0.0.1"),
}
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
for name, call in kinds.items():
    if only and only != name.split()[0]:
        continue
    for _ in range(20):
        response = call()
        assert response.status_code == 200, (name, response.status_code, response.content[:300])
    start = cpu()
    for _ in range(n):
        call()
    print(f"{name}: {1000 * (cpu() - start) / n:.2f} ms CPU per request ({n} requests)", flush=True)
for name, call in kinds.items():
    if only and only != name.split()[0]:
        continue
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    for _ in range(n):
        call()
    profile.disable()
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out).sort_stats("cumulative")
    stats.print_stats(top)
    print(f"===== {name}: cumulative =====")
    print(out.getvalue())
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(top)
    print(f"===== {name}: own time =====")
    print(out.getvalue())
from audit.services import verify_chain
from audit.models import AuditEvent
problems = verify_chain()
print(f"audit chain: {AuditEvent.objects.count()} events, {problems or 'intact'}")
assert not problems
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="postgres")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--containers", type=int, default=500)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--only", choices=("", "api", "page"), default="")
    parser.add_argument(
        "--query", default="", help="the API list's query string, e.g. ?page_size=10"
    )
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="berth-listprof-"))
    base.chmod(0o755)
    (base / "redis").mkdir()
    redis = RedisServer(base / "redis").start()
    pg = None
    try:
        extra = {}
        if args.database == "postgres":
            pg = Postgres(base / "pg")
            extra["DATABASE_URL"] = pg.start()
        served = ProdServer(base, redis.url, **extra)
        served.prepare(ROWS.format(host=served.host, n=args.containers))
        cookie = served.manage("shell", "-c", SESSION).strip().splitlines()[-1]
        subprocess.run(
            [str(PY), "-c", INNER, served.token, cookie, str(args.requests), str(args.top),
             args.only, args.query],
            cwd=REPO, env=served.env, check=True,
        )  # fmt: skip
    finally:
        redis.stop()
        if pg is not None:
            pg.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
