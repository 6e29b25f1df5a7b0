"""Walk every route with every HTTP method, user and kind of bad input: nothing answers 5xx.

Anonymous, role-less and admin clients send empty, malformed, wrongly typed, huge and
oversized bodies, and ids written in Unicode digits or past any integer column. Each request
runs in a savepoint that is rolled back, so every one meets the same fixture state (and no
task is ever sent: on-commit hooks never fire inside the test's transaction).
"""

import json
import re

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.test import Client

from operations import dispatch
from operations.models import Operation
from tests.security.routes import PUBLIC, routes

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete", "options", "head", "trace")
BODY_METHODS = ("post", "put", "patch", "delete")
# Ids that look like numbers to str.isdigit() but not to a database, or overflow its integers.
ODD_IDS = ("\u0661\u0662", "\u00b2", "9" * 30, "-1", "0x1f", "%00", "x" * 300)
# Field names that the API's request bodies use (filled with values of the wrong type).
FIELDS = (
    "name", "image", "ref", "tag", "team", "host", "user", "role", "members", "user_id",
    "username", "password", "email", "permissions", "scope", "scope_team", "scope_host",
    "address", "registry", "cmd", "command", "signal", "timeout", "since", "tail", "labels",
    "limits", "ports", "mounts", "network", "env", "is_active", "read_only", "expires_at",
    "cordoned", "state", "context", "dockerfile", "container", "file", "dangling", "term",
)  # fmt: skip
WRONG = [7, ["x"], {"a": {"b": None}}, True, -1.5e308, None, "", "\u0663"]


def _bodies():
    """(name, bytes, content type) of every kind of bad body."""
    huge = "\u00e9" * 20_000  # 40 kB a field, 1.7 MB a body: under the upload limit
    return [
        ("empty", b"", "application/json"),
        ("malformed", b'{"name": [1, ', "application/json"),
        ("not an object", b"[1, 2, 3]", "application/json"),
        (
            "wrong types",
            json.dumps({f: WRONG[i % len(WRONG)] for i, f in enumerate(FIELDS)}).encode(),
            "application/json",
        ),
        ("unicode digits", json.dumps(dict.fromkeys(FIELDS, "\u0661\u00b2")).encode(), "application/json"),
        ("huge strings", json.dumps(dict.fromkeys(FIELDS, huge), ensure_ascii=False).encode(), "application/json"),
        ("form", b"name=%ff%fe&team=\xff&ref=" + b"a" * 5000, "application/x-www-form-urlencoded"),
        ("bad multipart", b"--x\r\nContent-Disposition: form-data\r\n\r\n", "multipart/form-data; boundary=x"),
    ]  # fmt: skip


@pytest.fixture(autouse=True)
def fresh_throttles():
    """The join endpoint's per-address throttle lives in the cache: this walk spends it, so
    it starts and leaves the count at zero for the tests after it."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def answering_hosts(monkeypatch):
    """Hosts answer read calls at once: no agent runs here, and waiting for none would be a
    504 after the RPC timeout on every logs/stats/top request (tests/e2e cover real answers)."""
    monkeypatch.setattr(dispatch, "call_host", lambda host, task, *a, **k: {"task": task})


def _clients(users):
    clients = {"anonymous": Client(raise_request_exception=False)}
    for name in ("rando", "admin"):
        clients[name] = Client(raise_request_exception=False)
        clients[name].force_login(users[name])
    return clients


def _send(client, method, path, body=b"", content_type="application/json"):
    """One request in a savepoint that is rolled back: the next one meets the same rows."""
    with transaction.atomic():
        response = client.generic(method.upper(), path, body, content_type=content_type)
        transaction.set_rollback(True)
    return response


def _head(response) -> bytes:
    return b"" if response.streaming else response.content[:200]


class Problems(list):
    """Every failed expectation of a walk, reported together at its end."""

    def expect(self, ok, *what):
        if not ok:
            self.append(what)

    def server_error(self, response, *what):
        self.expect(response.status_code < 500, *what, response.status_code, _head(response))

    def assert_none(self):
        assert not self, f"{len(self)} problems:\n" + "\n".join(map(repr, self[:40]))


def test_every_method_on_every_route(users, containers):
    """All eight methods, three users: unsupported methods are 405 with Allow on the API."""
    clients = _clients(users)
    problems = Problems()
    count = 0
    for route, path, methods, callback in routes(containers["alpha"].pk):
        api_view = hasattr(callback, "actions")
        for method in METHODS:
            for who, client in clients.items():
                response = _send(client, method, path)
                status = response.status_code
                problems.server_error(response, who, method, path)
                count += 1
                unsupported = (
                    method in ("put", "patch", "delete", "trace") and method not in methods
                )
                if api_view and who == "admin" and unsupported:
                    problems.expect(status == 405, "not 405", method, path, status)
                    allowed = {m.strip() for m in response.get("Allow", "").split(",")}
                    problems.expect("OPTIONS" in allowed, "Allow", method, path, allowed)
                    problems.expect(method.upper() not in allowed, "Allow", method, path)
                    code = response.json()["error"]["code"] if status == 405 else None
                    problems.expect(code == "method_not_allowed", "format", path, code)
                if api_view and method == "options":
                    # DRF's description of the endpoint, for those the gate lets see it.
                    expected = {"admin": 200, "rando": 403, "anonymous": 401}[who]
                    if route in PUBLIC:
                        expected = 403  # the join endpoint takes no session: nobody may view
                    problems.expect(status == expected, "options", who, path, status)
                # Dashboard pages: HTML forms send GET and POST only, the rest is 405 with Allow.
                page = getattr(callback, "berth_action", None) and who != "anonymous"
                if page and method in ("put", "patch", "delete", "options", "trace"):
                    problems.expect(status == 405 and "Allow" in response, who, method, path)
    problems.assert_none()
    assert count > 2000
    assert not Operation.objects.exists()


@pytest.mark.parametrize("who", ["anonymous", "rando", "admin"])
def test_every_bad_body_on_every_route(users, containers, who):
    """Malformed, mistyped, huge, oversized and non-JSON bodies: a 4xx or a success, never 5xx."""
    client = _clients(users)[who]
    problems = Problems()
    too_large = b'{"name": "' + b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10) + b'"}'
    count = 0
    for route, path, methods, _ in routes(containers["alpha"].pk):
        for method in BODY_METHODS:
            if method not in methods:
                continue
            for kind, body, content_type in _bodies():
                response = _send(client, method, path, body, content_type)
                problems.server_error(response, who, kind, method, path)
                count += 1
            if who == "admin":
                response = _send(client, method, path, too_large)
                problems.server_error(response, "too large", method, path)
                if method == "post" and route in CREATES:
                    problems.expect(response.status_code == 413, "too large", path, response)
                count += 1
    problems.assert_none()
    assert count > 300
    assert not Operation.objects.exists()


# Collections whose POST reads a JSON body (the ones that ignore their body may answer 2xx).
CREATES = {f"api/v1/^{name}/$" for name in ("containers", "networks", "volumes", "users", "teams")}
_ID = re.compile(r"\(\?P<(pk|user_id)>[^)]*\)|<(?:int:|str:)?pk>")


def test_odd_ids_on_every_route(users, containers):
    """Unicode digits, overflowing and non-numeric ids in every id position: 404 or 400."""
    clients = _clients(users)
    problems = Problems()
    count = 0
    for route, _, methods, _ in routes(containers["alpha"].pk):
        if not _ID.search(route):
            continue
        for odd in ODD_IDS:
            path = "/" + _ID.sub(odd, route).replace("^", "").replace("$", "")
            for method in {*methods, "get", "options", "trace"}:
                for who in ("rando", "admin"):
                    response = _send(clients[who], method, path)
                    problems.server_error(response, who, method, path)
                    if route.startswith("api/v1/^") and method in methods and who == "admin":
                        status = response.status_code
                        problems.expect(status in (400, 404), "odd id", method, path, status)
                    count += 1
    problems.assert_none()
    assert count > 500
    assert not Operation.objects.exists()
