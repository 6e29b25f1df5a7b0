"""The dashboard's middleware (sessions, logins, messages), run only for requests that may use it."""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from dockerapi.sync_answer import is_docker_path

# An API request without a session cookie authenticates with a token (or not at all): it has
# no session to load, no logged-in user for the session to name, no messages to show. The
# Docker Engine API's paths take tokens only.
API_PREFIX = "/api/"
# Django calls these hooks only on the middleware it builds itself (settings.MIDDLEWARE).
_HANDLER_HOOKS = ("process_view", "process_exception", "process_template_response")


def needs_dashboard(request) -> bool:
    """Whether the request goes through the dashboard's middleware: anything outside the REST
    and Docker APIs, and an API request that carries a session cookie (the dashboard's own
    calls)."""
    path = request.path_info
    return (
        not (path.startswith(API_PREFIX) or is_docker_path(path))
        or settings.SESSION_COOKIE_NAME in request.COOKIES
    )


class DashboardMiddleware:
    """settings.BERTH_DASHBOARD_MIDDLEWARE around the rest of the chain, skipped when
    `needs_dashboard` says no: building a session, a lazy user and a message store for a
    token's request, and passing through three more layers, cost about 7 % of an API list
    request (issue 19). DRF's SessionAuthentication finds no user on a request that skipped
    them, as on one without a cookie, and leaves it to the token."""

    def __init__(self, get_response):
        self.skipping = get_response
        handler = get_response
        for path in reversed(settings.BERTH_DASHBOARD_MIDDLEWARE):
            handler = import_string(path)(handler)
            hooks = [hook for hook in _HANDLER_HOOKS if hasattr(handler, hook)]
            if hooks:
                raise ImproperlyConfigured(
                    f"{path} has {', '.join(hooks)}, which Django would not call inside "
                    "config.dashboard_middleware: list it in MIDDLEWARE instead"
                )
        self.through = handler

    def __call__(self, request):
        if needs_dashboard(request):
            return self.through(request)
        return self.skipping(request)
