"""Debian's prometheus scrapes Berth's /metrics (production server, two workers, HTTPS, a token
whose only permission is metrics.read) and PromQL over its HTTP API answers containers by
state, and the usage the host agent reports for a real running container."""

import json
import os
import secrets
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack, _random, wait_until
from tests.prod.prod_server import ProdServer, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.root]

SCRAPER = (
    "from accounts.models import ApiToken, User; from rbac.models import Role, RoleBinding; "
    "u = User.objects.create_user(username='prom-scraper', password=None); "
    "r = Role.objects.create(name='prom-scraper', permissions=['metrics.read']); "
    "RoleBinding.objects.create(user=u, role=r); "
    "print(ApiToken.issue(u, 'prometheus', read_only=True)[1])"
)

CONFIG = """
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: berth
    scheme: https
    metrics_path: /metrics
    tls_config:
      ca_file: {ca}
    authorization:
      type: Bearer
      credentials_file: {token_file}
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


class Prometheus:
    """Debian's prometheus on a loopback port with its own config and data dir; stopped by PID."""

    def __init__(self, base: Path, target_port: int, ca: Path, token: str):
        self.base = base
        self.port = free_port()
        token_file = base / "token"
        token_file.write_text(token)
        token_file.chmod(0o600)
        (base / "prometheus.yml").write_text(
            CONFIG.format(ca=ca, token_file=token_file, port=target_port)
        )
        self.proc = None

    def start(self):
        log = open(self.base / "prometheus.log", "ab")  # noqa: SIM115 (lives with the process)
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={self.base / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.base / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until(self._ready, 30, "prometheus to be ready")

    def _ready(self):
        if self.proc.poll() is not None:
            pytest.fail(f"prometheus exited:\n{self.log()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def log(self) -> str:
        return (self.base / "prometheus.log").read_text(errors="replace")[-3000:]

    def query(self, promql: str) -> list[dict]:
        """An instant PromQL query over the HTTP API: its result vector."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": promql}
        )
        with urllib.request.urlopen(url, timeout=5) as response:
            data = json.loads(response.read())
        assert data["status"] == "success", data
        return data["data"]["result"]

    def targets(self) -> list[dict]:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.port}/api/v1/targets", timeout=5
        ) as response:
            return json.loads(response.read())["data"]["activeTargets"]

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def served(redis_url):
    """An agent (heartbeat every 2 s) and the production server on one database."""
    if os.geteuid() != 0:
        pytest.skip("runs the host agent: root only")
    if shutil.which("prometheus") is None:
        pytest.fail("Debian's prometheus is not installed (scripts/lib.sh TEST_PACKAGES)")
    base = Path(f"/tmp/berth-prom-{_random(8)}")
    base.mkdir(mode=0o755)
    stack = Stack(base, redis_url)
    stack.env["BERTH_HEARTBEAT_SECONDS"] = "2"
    server = prometheus = None
    try:
        stack.setup()
        stack.start_worker()
        server = ProdServer(base, redis_url, workers=2, env=stack.env)
        server.token = stack.token
        server.manage("collectstatic", "--noinput")
        server.start()
        prometheus = Prometheus(
            base,
            server.port,
            server.cert,
            server.manage("shell", "-c", SCRAPER).strip().splitlines()[-1],
        )
        yield stack, server, prometheus
    finally:
        if prometheus is not None:
            prometheus.stop()
        if server is not None:
            server.stop()
        stack.teardown()
        shutil.rmtree(base, ignore_errors=True)


def create(server, team, name, start):
    spec = {"image": "busybox", "name": name, "command": ["sleep", "1000"]}
    status, _, body = server.get(
        "/api/v1/containers/?wait=60",
        {"Authorization": f"Bearer {server.token}"},
        method="POST",
        body={"team": team, "start": start, "spec": spec},
    )
    assert status in (200, 201), body
    return json.loads(body)


def test_prometheus_scrapes_containers_by_state(served):
    stack, server, prometheus = served
    running = f"pm-run-{secrets.token_hex(2)}"
    create(server, stack.team, running, True)
    create(server, stack.team, f"pm-new-{secrets.token_hex(2)}", False)
    prometheus.start()

    def by_state():
        rows = prometheus.query(f'sum by (state) (berth_containers{{host="{stack.host}"}})')
        return {row["metric"]["state"]: float(row["value"][1]) for row in rows}

    states = wait_until(
        lambda: (s := by_state()) and s.get("running") == 1 and s.get("created") == 1 and s,
        60,
        "prometheus to see one running and one created container",
    )
    assert states == {"running": 1.0, "created": 1.0}
    assert prometheus.targets()[0]["health"] == "up"

    # Per-container usage from the host's agent, labelled by id, name, team and host only.
    rows = wait_until(
        lambda: prometheus.query(f'berth_container_memory_usage_bytes{{name="{running}"}}'),
        60,
        "the agent's report of the running container",
    )
    labels = rows[0]["metric"]
    assert {k for k in labels if not k.startswith("__")} == {
        "container_id", "name", "team", "host", "instance", "job",
    }  # fmt: skip
    assert labels["team"] == stack.team and labels["host"] == stack.host
    assert float(rows[0]["value"][1]) > 0
    assert prometheus.query(f'berth_container_pids{{name="{running}"}} >= 1')
    assert prometheus.query(f'berth_host_up{{host="{stack.host}"}} == 1')
    # Requests counted by every worker add up (multiprocess mode): the list call and the POSTs.
    assert prometheus.query('sum(berth_http_requests_total{method="POST"}) >= 2')
    assert prometheus.query("sum(berth_operations) >= 2")  # the create operations
