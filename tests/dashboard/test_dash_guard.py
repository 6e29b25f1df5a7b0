"""Walk every dashboard URL: each view names its gate action (a declared permission)."""

from django.urls import URLPattern, URLResolver, get_resolver

from dashboard.decorators import PUBLIC, SIGNED_IN
from rbac import catalog
from tests.security.routes import DOCKER_API
from tests.security.routes import PUBLIC as PUBLIC_ROUTES


def _walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback


def test_every_dashboard_view_goes_through_the_gate():
    checked = 0
    for route, callback in _walk(get_resolver().url_patterns):
        if route.startswith("api/"):
            continue  # the core's guard test covers the API
        if route in DOCKER_API:
            continue  # the Docker API: token-only router, gated per handler (test_plat_dockerapi)
        action = getattr(callback, "berth_action", None)
        assert action, f"{route}: {callback.__module__}.{callback.__name__} is not @gated"
        if action == PUBLIC:
            # login, logout and OIDC sign-in (tests/security/routes.py lists them).
            assert route in PUBLIC_ROUTES, f"{route} must not be public"
        elif action != SIGNED_IN:
            catalog.split(action)  # a declared permission, not a typo
        checked += 1
    assert checked >= 30
