"""ASGI entry point (daphne): HTTP through Django; WebSockets (the web terminal) through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.prod")

# Django is set up before the consumers (and the models they import) are loaded.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from config.asgi_limit import BoundedHTTP  # noqa: E402
from dashboard.routing import websocket_urlpatterns  # noqa: E402

# Berth runs offline on one host behind daphne: it serves its own static/ (CSS, JS, vendored
# Chart.js, xterm.js, htmx) unless BERTH_SERVE_STATIC is off because a proxy serves STATIC_ROOT.
http_app = (
    ASGIStaticFilesHandler(django_asgi_app)
    if getattr(settings, "BERTH_SERVE_STATIC", True)
    else django_asgi_app
)
# At most this many requests of a worker inside Django at once (config/asgi_limit.py); 0: no
# limit (settings without it, e.g. dev).
http_app = BoundedHTTP(http_app, getattr(settings, "BERTH_HTTP_CONCURRENCY", 0))

application = ProtocolTypeRouter(
    {
        "http": http_app,
        # Session auth as for the pages; the Origin must be one of ALLOWED_HOSTS (no
        # cross-site WebSocket hijacking with the user's cookie).
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
