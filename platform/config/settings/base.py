"""Defaults shared by every environment; dev, test and prod only override."""

from pathlib import Path

from celery.schedules import crontab

from config.env import database_from_url, flag, secret, sqlite_database
from config.redis_url import channel_host, redis_url, split_tls

REPO_DIR = Path(__file__).resolve().parents[3]
PLATFORM_DIR = REPO_DIR / "platform"
DATA_DIR = Path(secret("BERTH_DATA_DIR") or REPO_DIR / "var")

SECRET_KEY = secret("DJANGO_SECRET_KEY", "insecure-dev-key-change-me")
DEBUG = False
ALLOWED_HOSTS = [
    h for h in (secret("DJANGO_ALLOWED_HOSTS") or "localhost,127.0.0.1").split(",") if h
]

INSTALLED_APPS = [
    # daphne first: its runserver serves HTTP and the dashboard's WebSockets (ASGI).
    "daphne",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "rbac",
    "audit",
    "hosts",
    "images",
    "registries",
    "containers",
    "health",
    "networks",
    "volumes",
    "operations",
    "transfers",
    "backups",
    "compliance",
    "api",
    "dockerapi",
    "dockertls",
    "agent",
    "channels",
    "dashboard",
    "directory",
    "metrics",
]

MIDDLEWARE = [
    # First: times the whole answer and labels it with the route pattern (metrics/).
    "metrics.middleware.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "audit.middleware.RequestIdMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",  # (cookies, not sessions: CSRF_USE_SESSIONS off)
    # BERTH_DASHBOARD_MIDDLEWARE, skipped for an API request without a session cookie.
    "config.dashboard_middleware.DashboardMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# The dashboard's middleware, in this order, inside config.dashboard_middleware: none may have
# process_view, process_exception or process_template_response (Django would not call them).
BERTH_DASHBOARD_MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [REPO_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_database_url = secret("DATABASE_URL")
DATABASES = {
    "default": database_from_url(_database_url)
    if _database_url
    else sqlite_database(DATA_DIR / "berth.sqlite3")
}
# SQLite's WAL is checkpointed by a thread of each process, not inside a request's commit
# (config/kept_sqlite3/checkpoint.py); 0 gives the checkpoints back to the commits.
BERTH_SQLITE_CHECKPOINT_THREAD = flag("BERTH_SQLITE_CHECKPOINT_THREAD", default=True)
# On SQLite, allowed reads' audit events go through a journal file of each process and reach
# the chain in batches (audit/journal.py); 0 appends each before its answer.
BERTH_AUDIT_JOURNAL = flag("BERTH_AUDIT_JOURNAL", default=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [REPO_DIR / "static"]
UPLOAD_DIR = DATA_DIR / "uploads"
FILE_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024

LOGIN_URL = "/login/"

# Sign-in: local accounts first, then the directory (LDAP, when BERTH_LDAP_URL is set). OIDC
# sign-in has its own views (directory/oidc.py) and logs in through ModelBackend's session path.
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "directory.ldap.LDAPBackend",
]
BERTH_LDAP = {
    "URL": secret("BERTH_LDAP_URL") or "",  # ldap://host:389 or ldaps://host:636
    "START_TLS": flag("BERTH_LDAP_START_TLS"),
    "CA_FILE": secret("BERTH_LDAP_CA_FILE") or "",
    "BIND_DN": secret("BERTH_LDAP_BIND_DN") or "",
    "BIND_PASSWORD": secret("BERTH_LDAP_BIND_PASSWORD") or "",
    "USER_BASE": secret("BERTH_LDAP_USER_BASE") or "",
    "USER_FILTER": secret("BERTH_LDAP_USER_FILTER") or "(uid={username})",
    "DISABLED_FILTER": secret("BERTH_LDAP_DISABLED_FILTER") or "",
    "GROUP_BASE": secret("BERTH_LDAP_GROUP_BASE") or "",
    "GROUP_FILTER": secret("BERTH_LDAP_GROUP_FILTER")
    or "(|(member={dn})(uniqueMember={dn})(memberUid={username}))",
    "ATTR_USERNAME": secret("BERTH_LDAP_ATTR_USERNAME") or "uid",
    "ATTR_EMAIL": "mail",
    "ATTR_FIRST_NAME": "givenName",
    "ATTR_LAST_NAME": "sn",
    "TIMEOUT": int(secret("BERTH_LDAP_TIMEOUT") or 5),
}
BERTH_OIDC = {
    "ISSUER": secret("BERTH_OIDC_ISSUER") or "",  # discovery at <issuer>/.well-known/...
    "CLIENT_ID": secret("BERTH_OIDC_CLIENT_ID") or "",
    "CLIENT_SECRET": secret("BERTH_OIDC_CLIENT_SECRET") or "",
    "SCOPES": secret("BERTH_OIDC_SCOPES") or "openid profile email",
    "GROUPS_CLAIM": secret("BERTH_OIDC_GROUPS_CLAIM") or "groups",
    "USERNAME_CLAIM": secret("BERTH_OIDC_USERNAME_CLAIM") or "preferred_username",
    "REDIRECT_URI": secret("BERTH_OIDC_REDIRECT_URI") or "",  # default: built from the request
    "LABEL": secret("BERTH_OIDC_LABEL") or "Sign in with SSO",
}

# Redis requires a password (REDIS_URL, or var/redis.password from berth-up); rediss:// is TLS.
REDIS_URL = redis_url(DATA_DIR)
_REDIS_PLAIN_URL, REDIS_TLS = split_tls(REDIS_URL)

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [channel_host(REDIS_URL)]},
    }
}

# Celery: only ids cross the broker, JSON only, and a task is acknowledged after it ran.
CELERY_BROKER_URL = _REDIS_PLAIN_URL
CELERY_RESULT_BACKEND = _REDIS_PLAIN_URL
CELERY_BROKER_USE_SSL = REDIS_TLS
CELERY_REDIS_BACKEND_USE_SSL = REDIS_TLS
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_TIMEOUT = 3
# A frozen Redis (up but not answering) must not hold a web request that publishes a task:
# a socket read gives up after this many seconds (issue 22; operations/dispatch.py).
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_timeout": 5, "socket_connect_timeout": 3}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_PUBLISH_RETRY = False
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_ROUTES = ("config.celery.route_task",)
# No remote control: anyone who can write to Redis could otherwise broadcast `shutdown` to every
# agent, or make one consume another host's queue (`add_consumer`). Agents act on signed
# task messages only (agent/admission.py).
CELERY_WORKER_ENABLE_REMOTE_CONTROL = False

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_RENDERER_CLASSES": ["api.renderers.FastJSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "api.negotiation.QuickContentNegotiation",
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "api.schema.BerthAutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Berth API",
    "DESCRIPTION": "Containers, images, networks, volumes, hosts and RBAC of a Berth installation.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Several models have a `state` or a `status`: name each choice set explicitly.
    "ENUM_NAME_OVERRIDES": {
        "HostStateEnum": "hosts.models.Host.State",
        "ContainerHealthStatusEnum": "health.models.ContainerHealth.Status",
        "InventoryStatusEnum": "compliance.models.inventory.ImageInventory.Status",
    },
}

# Berth policy knobs.
BERTH_MAX_WAIT_SECONDS = 60
BERTH_RPC_TIMEOUT_SECONDS = 15
# The control channel (trust/): the control plane's Ed25519 signing key (mode 600), how long a
# signed message stays valid, and how far an agent's clock may be off.
BERTH_CONTROL_KEY_FILE = secret("BERTH_CONTROL_KEY_FILE") or str(DATA_DIR / "keys" / "control.key")
BERTH_CHANNEL_TTL_SECONDS = int(secret("BERTH_CHANNEL_TTL_SECONDS") or 300)
BERTH_CHANNEL_SKEW_SECONDS = int(secret("BERTH_CHANNEL_SKEW_SECONDS") or 30)
# Archives in transit between hosts (a drained host's volumes), kept until their target has them.
BERTH_TRANSFER_DIR = secret("BERTH_TRANSFER_DIR") or str(DATA_DIR / "transfers")
# How long one step of a drain or migration (an operation on one host) may take.
BERTH_HOST_STEP_SECONDS = int(secret("BERTH_HOST_STEP_SECONDS") or 120)
# Enrolment: join attempts per client address (POST /api/v1/hosts/join/), and the broker URL
# told to joining agents (unset: each agent uses its own REDIS_URL).
BERTH_JOIN_RATE = secret("BERTH_JOIN_RATE") or "30/min"
BERTH_AGENT_BROKER_URL = secret("BERTH_AGENT_BROKER_URL") or ""
BERTH_EXEC_MARGIN_SECONDS = (
    5  # an exec may run `timeout` seconds; the host gets this much more to answer
)
# Agents: how often each sends its heartbeat (a host silent for three intervals is down) and
# its reconcile pass; tests shorten them to see a host go down in seconds.
BERTH_HEARTBEAT_SECONDS = int(secret("BERTH_HEARTBEAT_SECONDS") or 15)
BERTH_RECONCILE_SECONDS = int(secret("BERTH_RECONCILE_SECONDS") or 15)
# How long a host may stay silent before it counts as down: three intervals unless set (tests
# with one-second beats give a loaded machine more than three seconds of slack).
BERTH_HEARTBEAT_GRACE_SECONDS = int(
    secret("BERTH_HEARTBEAT_GRACE_SECONDS") or 3 * BERTH_HEARTBEAT_SECONDS
)
# How long a removed container's row stays (listed with ?state=removed) before each host's
# heartbeat purges it; 0 keeps them forever. The audit log keeps their history regardless.
BERTH_REMOVED_RETENTION_SECONDS = int(secret("BERTH_REMOVED_RETENTION_SECONDS") or 7 * 86400)
BERTH_TOKEN_DEFAULT_DAYS = 90
# /metrics without a token from these client addresses (comma-separated CIDRs, e.g. the
# Prometheus server's); everyone else needs a token whose user holds metrics.read globally.
BERTH_METRICS_ALLOW = [
    c.strip() for c in (secret("BERTH_METRICS_ALLOW") or "").split(",") if c.strip()
]
# Compliance (issue 13): images older than this many days fail image.stale; beat runs every
# check on this period, on the control-plane queue berth.control (compliance/tasks.py).
BERTH_COMPLIANCE_IMAGE_MAX_AGE_DAYS = int(secret("BERTH_COMPLIANCE_IMAGE_MAX_AGE_DAYS") or 90)
BERTH_COMPLIANCE_EVERY_SECONDS = int(secret("BERTH_COMPLIANCE_EVERY_SECONDS") or 3600)
CELERY_BEAT_SCHEDULE = {
    "compliance-run": {
        "task": "compliance.run_scheduled",
        "schedule": BERTH_COMPLIANCE_EVERY_SECONDS,
        "options": {"queue": "berth.control"},
    },
    "compliance-inventories": {
        "task": "compliance.scan_inventories",
        "schedule": 6 * BERTH_COMPLIANCE_EVERY_SECONDS,
        "options": {"queue": "berth.control"},
    },
    # Scheduled rolling updates of the teams that opted in, inside their windows (issue 13).
    "compliance-rollouts": {
        "task": "compliance.scheduled_rollouts",
        "schedule": int(secret("BERTH_ROLLOUT_SCHEDULE_SECONDS") or 1800),
        "options": {"queue": "berth.control"},
    },
    # Backups (issue 12): one set a day at BERTH_BACKUP_HOUR (UTC), then retention.
    "backup-daily": {
        "task": "backups.scheduled_backup",
        "schedule": crontab(minute=0, hour=int(secret("BERTH_BACKUP_HOUR") or 3)),
        "options": {"queue": "berth.control"},
    },
}
# Largest image archive or build context the API accepts (the host's disk is shared).
BERTH_MAX_UPLOAD_BYTES = 4 * 1024**3

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "INFO"},
}
