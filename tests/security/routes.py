"""Every HTTP route of Berth as a concrete path with the methods it answers (for the walkers)."""

import re

from django.urls import URLPattern, URLResolver, get_resolver

# Paths anyone may open: the login form, logout (it only ends a session), and the join endpoint
# of new hosts (the one-time join token in the body is its credential; tested in
# tests/platform/test_plat_hosts_enrol.py).
PUBLIC = {"login/", "logout/", "api/v1/^hosts/join/$"}
# OIDC sign-in (platform/directory/views_sso.py): open to anyone, they sign nobody in without the
# provider's answer (tests/sso/).
PUBLIC |= {"sso/oidc/login/", "sso/oidc/callback/", "sso/oidc/logout/"}
# Paths that take no session at all: only requests signed by an enrolled host's key (tested in
# tests/platform/test_plat_transfers.py); a session or a forged request carries nothing there.
HOST_SIGNED = {"api/v1/transfers/<str:pk>/data/", "api/v1/transfers/files/<str:name>/"}
# The Docker Engine API (platform/dockerapi/): bearer tokens only, no session is accepted (so a
# forged cross-site request carries nothing); anonymous and session callers get 401. Its router
# authenticates every path and each handler asks the gate (tests/platform/test_plat_dockerapi.py).
DOCKER_API = {
    r"^(?P<rest>_ping|version)$": "/_ping",
    r"^v(?P<version>\d+\.\d+)/(?P<rest>.*)$": "/v1.47/containers/json",
}
# Prometheus' /metrics (platform/metrics/): a bearer token holding metrics.read or an address
# in BERTH_METRICS_ALLOW, never a session: walked like the Docker API (401 for anonymous and
# session callers, whatever the method; tests/metrics/test_metrics_access.py).
DOCKER_API["metrics"] = "/metrics"
_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")
ALL_METHODS = ("get", "post", "put", "patch", "delete")


def _walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback


def concrete(route: str, pk: int = 1) -> str:
    """'api/v1/^containers/(?P<pk>[^/.]+)/exec/$' -> '/api/v1/containers/1/exec/'."""
    if route in DOCKER_API:
        return DOCKER_API[route]
    if route.endswith("^.*$"):
        return "/" + route.replace("^.*$", "no-such-thing/")

    def value(name):
        return "json" if name == "format" else str(pk)

    path = _GROUP.sub(lambda m: value(m[1]), route)
    path = _CONVERTER.sub(lambda m: value(m[1]), path)
    path = path.replace("^", "").replace("$", "").replace("\\.", ".").replace("/?", "/")
    return "/" + path


def routes(pk: int = 1):
    """(route pattern, concrete path, methods, callback) for every URL pattern."""
    for route, callback in _walk(get_resolver().url_patterns):
        actions = getattr(callback, "actions", None)
        methods = tuple(m for m in actions if m in ALL_METHODS) if actions else ALL_METHODS
        yield route, concrete(route, pk), methods, callback
