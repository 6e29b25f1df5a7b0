"""Walk every HTTP and WebSocket route: anonymous and role-less users are refused, CSRF holds.

The structural guard tests (tests/platform/test_plat_guard.py, tests/dashboard/test_dash_guard.py)
check that each view is wired to the gate; these send real requests to every route.
"""

import json

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from operations.models import Operation
from tests.security.routes import DOCKER_API, HOST_SIGNED, PUBLIC, routes

pytestmark = pytest.mark.django_db


def _send(client, method, path):
    return getattr(client, method)(path, {}, **({"format": "json"} if method != "get" else {}))


def _is_login_redirect(response):
    return response.status_code == 302 and response["Location"].startswith("/login/")


def test_anonymous_is_refused_on_every_route(api, containers):
    pk = containers["alpha"].pk
    checked = 0
    for route, path, methods, _ in routes(pk):
        if route in PUBLIC:
            continue
        for method in methods:
            response = _send(api(), method, path)
            if route.endswith("^.*$"):
                assert response.status_code == 404, path  # unknown API path: touches nothing
            elif route in DOCKER_API:
                assert response.status_code == 401, (method, path, response.status_code)
            elif route in HOST_SIGNED:
                # Signed by a host's key, never a user's: refused, or a method it never takes.
                assert response.status_code in (403, 405), (method, path, response.status_code)
            elif route.startswith("api/"):
                assert response.status_code in (401, 403), (method, path, response.status_code)
            else:
                # A login redirect, or 405 from a POST-only view that reads nothing.
                refused = _is_login_redirect(response) or response.status_code == 405
                assert refused, (method, path, response.status_code)
            checked += 1
    assert checked > 100
    containers["alpha"].refresh_from_db()
    assert not Operation.objects.exists()


def test_a_user_without_roles_reaches_nothing(api, containers):
    """rando is signed in but holds no role: every gated route refuses (or shows nothing)."""
    pk = containers["alpha"].pk
    for route, path, methods, callback in routes(pk):
        if route in PUBLIC or route.endswith("^.*$"):
            continue
        for method in methods:
            response = _send(api("rando"), method, path)
            if getattr(callback, "berth_action", None) == "signed-in":
                # A page of what the gate lets them see (any method only renders it).
                assert response.status_code in (200, 405), path
                assert b"ts-web-a" not in response.content, path
                continue
            if route in DOCKER_API:
                assert response.status_code == 401, path  # a session is no Docker API credential
                continue
            if route in ("api/schema/", "api/docs/") and method == "get":
                continue  # the API's description: signed-in users may read it, it holds no object
            if response.status_code == 200 and method == "get" and route.startswith("api/"):
                assert response.json().get("count") == 0, path  # a list filtered in SQL to nothing
                continue
            assert response.status_code in (400, 403, 404, 405), (method, path, response)
    assert not Operation.objects.exists()


def test_every_dashboard_post_needs_the_csrf_token(page, containers):
    """An admin's session without the CSRF token changes nothing, on every dashboard route."""
    client = page("admin", csrf=True)
    checked = 0
    for route, path, _, _ in routes(containers["alpha"].pk):
        if route.startswith("api/"):
            continue
        if route in DOCKER_API:
            # Takes no session at all (bearer tokens only): a forged request carries nothing.
            assert client.post(path).status_code == 401, path
            continue
        response = client.post(path, {"action": "stop", "name": "ts-x", "ref": "busybox"})
        assert response.status_code == 403, (path, response.status_code)
        assert b"CSRF" in response.content, path
        checked += 1
    assert checked >= 40
    assert not Operation.objects.exists()


def test_every_api_write_with_a_session_needs_the_csrf_token(users, containers):
    from rest_framework.test import APIClient

    client = APIClient(enforce_csrf_checks=True)
    client.force_login(users["admin"])
    for route, path, methods, _ in routes(containers["alpha"].pk):
        if (
            not route.startswith("api/v1/")
            or route.endswith("^.*$")
            or route in PUBLIC
            or route in HOST_SIGNED
        ):
            continue  # the join endpoint takes no session, so a forged request carries nothing
        for method in methods:
            if method == "get":
                continue
            response = _send(client, method, path)
            assert response.status_code == 403, (method, path, response.status_code)
            assert "CSRF" in json.dumps(response.json()), path
    assert not Operation.objects.exists()


def _ws(path, headers):
    from config.asgi import application

    async def run():
        comm = WebsocketCommunicator(application, path, headers=headers)
        connected, code = await comm.connect()
        message = None
        if connected:
            message = json.loads(await comm.receive_from(timeout=5))
            await comm.disconnect()
        return connected, code, message

    return async_to_sync(run)()


def test_every_websocket_route_refuses_anonymous_and_foreign_origins(containers, monkeypatch):
    from dashboard.routing import websocket_urlpatterns

    monkeypatch.setattr("channels.db.close_old_connections", lambda: None)
    assert websocket_urlpatterns
    for pattern in websocket_urlpatterns:
        path = "/" + str(pattern.pattern).replace("<int:pk>", str(containers["alpha"].pk))
        host = [(b"host", b"127.0.0.1")]
        connected, _, message = _ws(path, host + [(b"origin", b"http://127.0.0.1")])
        assert connected and message["state"] == "error" and "log in" in message["message"]
        connected, _, _ = _ws(path, host + [(b"origin", b"http://evil.example")])
        assert not connected, path


def test_no_settings_module_allows_every_host():
    """ALLOWED_HOSTS is also the WebSocket origin allow-list: '*' would admit any site."""
    import importlib

    for name in ("base", "dev", "test"):
        hosts = importlib.import_module(f"config.settings.{name}").ALLOWED_HOSTS
        assert "*" not in hosts and hosts, name
