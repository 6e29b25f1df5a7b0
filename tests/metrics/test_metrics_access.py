"""/metrics: who may read it (tokens with metrics.read held globally, allowed addresses), that
every refusal is audited, and the label set of each family (bounded: no raw paths, no ids
other than the container's)."""

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import ApiToken
from audit.models import AuditEvent
from metrics import reports
from operations.models import Operation
from rbac.models import Role, RoleBinding
from tests.platform.factories import make_container

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def scrape(token=None, addr="127.0.0.1"):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return Client(REMOTE_ADDR=addr).get("/metrics", **headers)


def series(text: str) -> dict[str, list[dict]]:
    """Parse the text format: metric name -> list of label dicts."""
    out: dict[str, list[dict]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, line
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        out.setdefault(match.group(1), []).append(labels)
    return out


def refusals():
    return AuditEvent.objects.filter(action="metrics.read", outcome="denied")


def test_no_token_from_unlisted_address_is_401_and_audited(users, settings):
    settings.BERTH_METRICS_ALLOW = ["10.9.0.0/16"]
    response = scrape(addr="127.0.0.1")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "token is required" in response.json()["detail"]
    event = refusals().get()
    assert event.summary["remote_addr"] == "127.0.0.1"


def test_bad_or_revoked_token_is_401_and_audited(users):
    assert scrape("berth_not-a-token").status_code == 401
    token, secret = ApiToken.issue(users["admin"], "scraper")
    ApiToken.objects.filter(pk=token.pk).update(revoked_at="2020-01-01T00:00:00Z")
    assert scrape(secret).status_code == 401
    assert refusals().count() == 2
    # Basic auth and other schemes are refused the same way.
    response = Client().get("/metrics", HTTP_AUTHORIZATION="Basic YTpi")
    assert response.status_code == 401


def test_token_without_metrics_read_is_403_and_audited(users):
    _, secret = ApiToken.issue(users["viewer"], "scraper")
    response = scrape(secret)
    assert response.status_code == 403
    event = refusals().get()
    assert event.actor == users["viewer"].username
    assert "metrics.read" in event.reason


def test_team_scoped_metrics_read_is_not_enough(users, teams):
    role = Role.objects.create(name="tm-scraper", permissions=["metrics.read"])
    RoleBinding.objects.create(user=users["rando"], role=role, scope_team=teams["alpha"])
    _, secret = ApiToken.issue(users["rando"], "scraper")
    response = scrape(secret)
    assert response.status_code == 403
    assert "globally" in response.json()["detail"]
    RoleBinding.objects.create(user=users["rando"], role=role)  # now global
    assert scrape(secret).status_code == 200


def test_token_with_metrics_read_is_allowed_and_audited(users):
    _, secret = ApiToken.issue(users["admin"], "scraper", read_only=True)
    response = scrape(secret)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert AuditEvent.objects.filter(action="metrics.read", outcome="allowed").count() == 1


def test_allowed_address_needs_no_token(users, settings):
    settings.BERTH_METRICS_ALLOW = ["not-a-cidr", "127.0.0.0/8", "::1/128"]
    assert scrape(addr="127.0.0.1").status_code == 200
    assert scrape(addr="::1").status_code == 200
    assert scrape(addr="::ffff:127.0.0.5").status_code == 200
    assert scrape(addr="192.0.2.1").status_code == 401
    # A bad entry admits nobody by itself.
    settings.BERTH_METRICS_ALLOW = ["not-a-cidr"]
    assert scrape(addr="127.0.0.1").status_code == 401


def test_only_get_and_never_a_session(users, settings):
    # Anonymous and session callers are refused whatever the method (no session is a
    # credential here); an admitted caller may only read.
    client = Client()
    client.force_login(users["admin"])
    assert client.get("/metrics").status_code == 401
    assert client.post("/metrics").status_code == 401
    settings.BERTH_METRICS_ALLOW = ["127.0.0.1/32"]
    response = Client(REMOTE_ADDR="127.0.0.1").post("/metrics")
    assert response.status_code == 405 and "GET" in response["Allow"]


def test_label_sets_are_bounded(users, teams, host, settings, broker):
    settings.BERTH_METRICS_ALLOW = ["127.0.0.1/32"]
    web = make_container(teams["alpha"], host, "tm-web", observed_state="running")
    make_container(teams["beta"], host, "tm-db", observed_state="stopped")
    Operation.objects.create(kind="container.start", target_type="container", host=host)
    now = timezone.now()
    Operation.objects.create(
        kind="container.stop", target_type="container", host=host, state="succeeded",
        started_at=now - timedelta(seconds=3), finished_at=now,
    )  # fmt: skip
    # The agent's report as agent/metrics_report.py writes it, plus a stray id and a foreign host.
    reports.write(
        host.name,
        {
            "at": 1.0,
            "containers": {
                str(web.pk): {
                    "cpu_seconds": 1.5,
                    "memory_bytes": 4096,
                    "memory_limit_bytes": None,
                    "pids": 3,
                    "rx_bytes": 10,
                    "tx_bytes": 20,
                    "blkio_read_bytes": 0,
                    "blkio_write_bytes": 512,
                    "oom_kills": 0,
                },  # fmt: skip
                "999999": {"cpu_seconds": 9.0},
                "x": {"cpu_seconds": 9.0},
            },
        },
        60,
    )
    # Requests to two different ids of one route count under one route label.
    client = Client()
    client.force_login(users["admin"])
    for pk in (web.pk, 12345):
        client.get(f"/api/v1/containers/{pk}/")
    found = series(scrape().content.decode())

    def labelsets(name):
        return {tuple(sorted(labels)) for labels in found[name]}

    assert labelsets("berth_containers") == {("host", "state", "team")}
    containers = {(s["team"], s["host"], s["state"]) for s in found["berth_containers"]}
    assert (teams["alpha"].name, host.name, "running") in containers
    assert (teams["beta"].name, host.name, "stopped") in containers
    assert {"host": host.name} in found["berth_host_up"]
    assert {"host": host.name} in found["berth_celery_queue_depth"]
    assert {"kind": "container.start", "state": "pending"} in found["berth_operations"]
    cpu = found["berth_container_cpu_seconds_total"]
    assert cpu == [
        {
            "container_id": str(web.pk),
            "name": "tm-web",
            "team": teams["alpha"].name,
            "host": host.name,
        }
    ]
    assert labelsets("berth_container_memory_usage_bytes") == {
        ("container_id", "host", "name", "team")
    }
    routes = {s["route"] for s in found["berth_http_requests_total"]}
    assert not any("12345" in route or f"/{web.pk}/" in route for route in routes)
    detail = [r for r in routes if "containers" in r and "pk" in r]
    assert detail, routes
    assert labelsets("berth_http_requests_total") == {("method", "route", "status")}
    assert ("action", "outcome") in labelsets("berth_gate_decisions_total")
    assert found["berth_metrics_redis_up"] == [{}]
    stop = {s["le"] for s in found["berth_operation_duration_seconds_bucket"]}
    assert {"2.5", "5.0", "+Inf"} <= stop

    # Every metric the Grafana dashboard in the repository queries is one we serve.
    dashboard = json.loads((REPO / "docs/operations/grafana-berth.json").read_text())
    wanted = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            wanted |= set(re.findall(r"berth_[a-z_]+", target["expr"]))
    for variable in dashboard["templating"]["list"]:
        wanted |= set(re.findall(r"berth_[a-z_]+", json.dumps(variable.get("query", ""))))
    assert wanted and wanted <= set(found), wanted - set(found)


def test_broker_down_keeps_database_metrics(users, host, settings, broker_down):
    settings.BERTH_METRICS_ALLOW = ["127.0.0.1/32"]
    response = scrape()
    assert response.status_code == 200
    text = response.content.decode()
    assert "berth_metrics_redis_up 0.0" in text
    assert f'berth_host_up{{host="{host.name}"}} 1.0' in text
