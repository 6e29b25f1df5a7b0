"""Production: secrets required from the environment, HTTPS only."""

from config.env import required, secret
from config.settings.base import *  # noqa: F403

DEBUG = False
SECRET_KEY = required("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = [h for h in required("DJANGO_ALLOWED_HOSTS").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in (secret("DJANGO_CSRF_TRUSTED_ORIGINS") or "").split(",") if o]

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = True
SECURE_HSTS_SECONDS = 31536000
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"

# Static files: WhiteNoise serves STATIC_ROOT (filled by `manage.py collectstatic`) from every
# worker, compressed copies included, instead of Django's per-request static handler.
BERTH_SERVE_STATIC = False
MIDDLEWARE = list(MIDDLEWARE)  # noqa: F405
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "whitenoise.middleware.WhiteNoiseMiddleware",
)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# PostgreSQL: a connection pool per worker process, shared by its threads (WSGI) or by the
# thread of each request (ASGI, the WebSocket server): a connection is handed back in
# microseconds instead of a new backend per request.
if DATABASES["default"]["ENGINE"].endswith("postgresql"):  # noqa: F405
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405 (the pool keeps the connections)
    # BERTH_DB_POOL_MIN connections are opened when the pool opens (default 2).
    # config/http_server.py sets it to the pool's size for the HTTP workers: each has as many
    # threads as connections and uses them all under load, and a pool growing one connection
    # at a time kept its threads' first requests waiting (issue 15). Other processes on these
    # settings (the WebSocket server, commands, workers) keep the small default.
    _pool_size = int(secret("BERTH_DB_POOL_SIZE") or 8)
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {  # noqa: F405
        "min_size": min(_pool_size, int(secret("BERTH_DB_POOL_MIN") or 2)),
        "max_size": _pool_size,
        "timeout": 10,
    }

# Requests of one worker process inside Django at once (config/asgi_limit.py): as many as its
# pool has database connections; the rest wait on the event loop instead of as threads.
BERTH_HTTP_CONCURRENCY = int(secret("BERTH_HTTP_CONCURRENCY") or secret("BERTH_DB_POOL_SIZE") or 8)

# HTTP is served by WSGI workers (config/http_server.py: granian, BERTH_HTTP_CONCURRENCY
# threads each) and the web terminal's WebSockets by an ASGI server on a port of its own
# (deploy/gunicorn-ws.conf.py). The terminal page opens its socket at the page's host name on
# this port; 0: the page's own origin (a proxy in front routes /ws/ there).
_ws_bind = secret("BERTH_WS_BIND") or ""
BERTH_WS_PORT = int(
    secret("BERTH_WS_PORT")
    or (_ws_bind.rpartition(":")[2] if _ws_bind else 0)
    or int((secret("BERTH_BIND") or "127.0.0.1:8443").rpartition(":")[2]) + 1
)
