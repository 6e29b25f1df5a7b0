"""Walk every URL: each API view inherits the gated base and declares every action's permission."""

from django.urls import URLPattern, URLResolver, get_resolver

from api.base import GatedViewSet
from rbac import catalog

# Views allowed outside the gate: the schema and its docs carry no object and need a login.
EXEMPT = {
    "drf_spectacular.views.SpectacularAPIView",
    "drf_spectacular.views.SpectacularSwaggerView",
    "api.views.api_not_found",  # answers 404 for unknown paths; touches nothing
    # For host agents, not people: a request signed by an enrolled host's key, allowed only to
    # the transfer's source (upload) or target (download); every attempt is audited.
    "transfers.views.transfer_data",
    # For host agents too: an upload or archive named to that host by its unfinished operation
    # or a call sealed for it (transfers/files.py); every attempt is audited.
    "transfers.files.host_file",
}


def _walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback


def test_every_api_view_goes_through_the_gate():
    checked = 0
    for route, callback in _walk(get_resolver().url_patterns):
        if not route.startswith("api/"):
            continue  # the dashboard guards its own pages through the same gate
        cls = getattr(callback, "cls", None)
        target = cls or callback
        name = f"{target.__module__}.{target.__qualname__}"
        if name in EXEMPT:
            continue
        assert cls is not None and issubclass(cls, GatedViewSet), (
            f"{route}: {name} bypasses the gate"
        )
        actions = getattr(callback, "actions", None) or {}
        assert actions, f"{route}: {name} is not a viewset route"
        for method, action in actions.items():
            code = cls.gate_actions.get(action)
            assert code, (
                f"{route}: {method.upper()} -> {name}.{action} has no permission in gate_actions"
            )
            catalog.split(code)  # a declared permission, not a typo
            checked += 1
        assert cls.resource, f"{name} names no resource"
    assert checked > 40
