"""Where agents leave their per-container samples and where the web reads them: one Redis key
per host, `berth:metrics:host:<name>`, a JSON document that expires after three heartbeats.

The agent writes it (agent/metrics_report.py); the scrape reads all of them at once. A report
names containers by primary key only: their names, teams and hosts come from the database, so
a report cannot invent labels, and a container is shown only under the host its row is on.
"""

import json
import os

import redis

KEY_PREFIX = "berth:metrics:host:"
TIMEOUT_SECONDS = 2

_clients: dict[tuple, redis.Redis] = {}


def key(host_name: str) -> str:
    """The Redis key of one host's report."""
    return KEY_PREFIX + host_name


def client() -> redis.Redis:
    """A pooled client for the broker's Redis, one per process (forked workers get their own)."""
    from config.celery import app as celery_app

    url = celery_app.conf.broker_url
    cache_key = (os.getpid(), url)
    if cache_key not in _clients:
        tls = celery_app.conf.broker_use_ssl or {}
        _clients[cache_key] = redis.Redis.from_url(
            url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS, **tls
        )
    return _clients[cache_key]


def write(host_name: str, report: dict, ttl_seconds: int) -> None:
    """Store a host's report (agent side)."""
    client().set(key(host_name), json.dumps(report, separators=(",", ":")), ex=ttl_seconds)


def read_all(host_names: list[str]) -> dict[str, dict]:
    """Every host's current report, by host name (missing or unreadable ones left out)."""
    if not host_names:
        return {}
    raw = client().mget([key(name) for name in host_names])
    reports = {}
    for name, value in zip(host_names, raw, strict=True):
        if not value:
            continue
        try:
            data = json.loads(value)
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("containers"), dict):
            reports[name] = data
    return reports
