#!/usr/bin/env python
"""bench/prod_load.py with granian in place of gunicorn as the production HTTP server: a
candidate measured before a switch (issue 15), not what `scripts/berth-up --prod` runs.

granian (Rust: HTTP parsing, TLS and the connection handling outside Python) serves the same
`config.wsgi:application` with the same settings, certificate and worker count: 2 workers,
`--blocking-threads` (default 8, the database pool's size) threads each for Django. Needs
`pip install granian` in the virtual environment; every option of bench/prod_load.py applies.

    .venv/bin/python bench/prod_load_granian.py --database postgres [--think 0.6] [--json out]
"""

import os
import runpy
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.prod import prod_server  # noqa: E402

THREADS = os.environ.get("BERTH_HTTP_CONCURRENCY", "8")


def start_granian(self, timeout: float = 60) -> None:
    """ProdServer.start, with granian for HTTP (no WebSocket server: the load uses none)."""
    granian = prod_server.PY.parent / "granian"
    if not granian.exists():
        raise SystemExit("granian is not installed: .venv/bin/pip install granian")
    env = dict(self.env)
    metrics_dir = self.base / "prometheus"
    metrics_dir.mkdir(exist_ok=True)
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    log = open(self.base / "web.log", "ab")  # noqa: SIM115 (lives as long as the process)
    self.proc = subprocess.Popen(
        [str(granian), "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(self.port),
         "--workers", str(self.workers), "--blocking-threads", THREADS,
         "--ssl-certificate", str(self.cert), "--ssl-keyfile", str(self.key),
         "--working-dir", str(REPO / "platform"), "config.wsgi:application"],
        cwd=REPO / "platform", env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if self.proc.poll() is not None:
            raise RuntimeError(f"granian exited:\n{self.log()}")
        if self._answers():
            return
        time.sleep(0.2)
    raise RuntimeError(f"granian did not start in {timeout} s:\n{self.log()}")


if __name__ == "__main__":
    prod_server.ProdServer.start = start_granian
    sys.argv = [str(REPO / "bench" / "prod_load.py"), *sys.argv[1:]]
    runpy.run_path(sys.argv[0], run_name="__main__")
