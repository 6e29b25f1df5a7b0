"""Berth against dockerd at one count, request by request (issue 19: `ps`, the API list and
the remove no slower than Docker's).

bench/scale.py measures Docker's series minutes after Berth's (--sequential), and this
machine's speed drifts by more than the difference between the two at 10 containers (a page
of 10 through Berth's production server read 1.3-2.0 ms in four runs, the Engine's list
1.0-1.7 ms). Here both hold the same containers at once, and each measure alternates between
them sample by sample, so both see the same machine:

  API list, page of 10     GET /api/v1/containers/?page_size=10 (production server) against
                           the Engine's GET /containers/json (every container: at this count,
                           as many rows)
  API list, default page   GET /api/v1/containers/ against the same
  API create+start         POST /api/v1/containers/?wait (production server) against create
                           and start through the Engine
  API remove (stopped)     DELETE of a stopped container, each side through its API
  ps                       scripts/berth-runtime ps against docker ps

    .venv/bin/python bench/versus_docker.py [--count 10] [--requests 300] [--lifecycles 100]
        [--database postgres]

(--database postgres: Berth's database is a private PostgreSQL cluster, as in production,
instead of its SQLite file.)

(as root). Prints the medians, the lower quartiles and Berth / Docker for each.
"""

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import (  # noqa: E402
    Berth,
    Docker,
    _prod_conn,
    clean_up,
    fill,
    ms_of,
    start_dockerd,
)
from served_berth import PROD_HEADERS, REPO, ServedBerth, private_database  # noqa: E402

sys.path.insert(0, str(REPO))  # the runtime, for the bench's own Runtime and the image


def alternate(samples: dict, what: str, berth_fn, docker_fn, times: int) -> None:
    """`times` samples of each side, alternating (each side first in every other pair)."""
    sides = [("berth", berth_fn), ("docker", docker_fn)]
    for i in range(times):
        for side, fn in sides if i % 2 else sides[::-1]:
            samples.setdefault(what, {}).setdefault(side, []).append(fn())


def lifecycles(berth: Berth, docker: Docker, samples: dict, times: int, tag: str) -> None:
    """Create+start, then (after an untimed stop) remove, alternately on both sides."""
    bconn, prod, dconn = berth.conn(), _prod_conn(berth), docker.conn()
    made, serial = {}, itertools.count()

    def berth_create():
        name = f"v{tag}b{next(serial)}"
        return ms_of(lambda: made.__setitem__("b", berth.api_create(prod, name, PROD_HEADERS)))

    def docker_create():
        name = f"v{tag}d{next(serial)}"
        return ms_of(lambda: made.__setitem__("d", docker.create(dconn, name)))

    def berth_remove():
        berth.api_stop(bconn, made["b"])
        return ms_of(lambda: berth.api_remove(prod, made["b"], PROD_HEADERS))

    def docker_remove():
        docker.stop(dconn, made["d"])
        return ms_of(lambda: docker.remove(dconn, made["d"]))

    for _ in range(times):
        alternate(samples, "API create+start", berth_create, docker_create, 1)
        alternate(samples, "API remove (stopped)", berth_remove, docker_remove, 1)


def report(samples: dict, count: int) -> str:
    """The medians (and lower quartiles) of each side, and their ratio."""
    lines = [
        f"Berth and Docker at {count} containers each, sample by sample (ms):",
        "",
        "| measure | Berth median | Docker median | ratio | Berth p25 | Docker p25 | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for what, sides in samples.items():
        b, d = sides["berth"], sides["docker"]
        qb, qd = statistics.quantiles(b, n=4)[0], statistics.quantiles(d, n=4)[0]
        mb, md = statistics.median(b), statistics.median(d)
        lines.append(
            f"| {what} ({len(b)} each) | {mb:.2f} | {md:.2f} | {mb / md:.2f} "
            f"| {qb:.2f} | {qd:.2f} | {qb / qd:.2f} |"
        )
    return "\n".join(lines)


def main() -> int:
    """Start both, fill both, alternate every measure, print the table, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--lifecycles", type=int, default=100)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="berth-versus-"))
    (base / "berth").mkdir()
    pg = private_database(base, args.database)
    dockerd = served = None
    tag = str(int(time.time()) % 100000)
    try:
        url = pg.start() if pg is not None else ""
        served = ServedBerth(base / "berth", "config.settings.dev", database_url=url)
        served.start(["runserver", "prod"])
        berth = Berth(served)
        dockerd = start_dockerd(base / "docker")
        docker = Docker(dockerd)
        fill(berth.conn, berth.api_create, [f"f{tag}b{i}" for i in range(args.count)], 4)
        fill(docker.conn, docker.create, [f"f{tag}d{i}" for i in range(args.count)], 4)
        time.sleep(10)  # the fills' after-work (the agent's observations)
        samples: dict = {}
        prod, dconn = _prod_conn(berth), docker.conn()
        for query, what in (
            ("?page_size=10", "API list, page of 10"),
            ("", "API list, default page"),
        ):
            for _ in range(10):  # warm both connections
                berth.api_list(prod, query, PROD_HEADERS)
                docker.list(dconn)
            alternate(
                samples,
                what,
                lambda q=query: ms_of(lambda: berth.api_list(prod, q, PROD_HEADERS)),
                lambda: ms_of(lambda: docker.list(dconn)),
                args.requests,
            )
        lifecycles(berth, docker, samples, args.lifecycles, tag)
        alternate(samples, "ps", lambda: ms_of(berth.ps_script), lambda: ms_of(docker.ps), 50)
        print(report(samples, args.count))
    finally:
        clean_up(base, dockerd, served, database=pg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
