"""Read settings and secrets from the environment: the one place that touches os.environ."""

import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured


def secret(name: str, default: str | None = None) -> str | None:
    """Return env var `name`, or the content of the file named by `name`_FILE (Docker secrets)."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        return Path(file_name).read_text().strip()
    return os.environ.get(name, default)


def required(name: str) -> str:
    """Return a secret that production cannot run without."""
    value = secret(name)
    if not value:
        raise ImproperlyConfigured(f"set the environment variable {name} (or {name}_FILE)")
    return value


def flag(name: str, default: bool = False) -> bool:
    """Parse an on/off environment variable."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def database_from_url(url: str) -> dict:
    """Turn postgres://user:pass@host:port/name?sslmode=... into a DATABASES entry."""
    parsed = urlparse(url)
    if parsed.scheme not in ("postgres", "postgresql", "pgsql"):
        raise ImproperlyConfigured(
            f"DATABASE_URL: unsupported scheme {parsed.scheme!r} (use postgres://)"
        )
    name = unquote(parsed.path.lstrip("/"))
    if not name:
        raise ImproperlyConfigured("DATABASE_URL needs a database name: postgres://user@host/NAME")
    options = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
    host = unquote(parsed.hostname or "") if parsed.hostname else ""
    # A unix socket directory may be given as ?host=/run/postgresql.
    host = options.pop("host", host)
    # Parameters sent apart from the query text (ServerBindingCursor), so that psycopg
    # prepares a statement run 5 times on a connection and PostgreSQL stops parsing and
    # planning it again: the pooled connections of config.settings.prod live long.
    # (?server_side_binding=false&prepare_threshold=off turns it off, e.g. behind PgBouncer in
    # transaction mode.)
    binding = options.get("server_side_binding", "true")
    options["server_side_binding"] = binding.lower() in ("1", "true", "yes", "on")
    threshold = options.get("prepare_threshold", "5")
    options["prepare_threshold"] = int(threshold) if threshold.isdigit() else None
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parsed.username or ""),
        "PASSWORD": unquote(parsed.password or ""),
        "HOST": host,
        "PORT": str(parsed.port or ""),
        "OPTIONS": options,
        "CONN_MAX_AGE": 60,
        "TEST": {"NAME": f"test_{name}"},
    }


def _sqlite_conn_max_age() -> int:
    """Seconds a thread keeps its SQLite connection between requests (Django's CONN_MAX_AGE):
    0, closed after each (kept for the process's next thread by config.kept_sqlite3), unless
    BERTH_SQLITE_CONN_MAX_AGE says otherwise (config/http_server.py does: its threads live)."""
    value = os.environ.get("BERTH_SQLITE_CONN_MAX_AGE", "0").strip()
    if not value.isascii() or not value.isdigit() or int(value) > 86400:
        raise ImproperlyConfigured("BERTH_SQLITE_CONN_MAX_AGE must be seconds, 0 to 86400")
    return int(value)


def _sqlite_sync() -> str:
    value = os.environ.get("BERTH_SQLITE_SYNCHRONOUS", "NORMAL").strip().upper()
    if value not in ("NORMAL", "FULL", "EXTRA"):
        raise ImproperlyConfigured("BERTH_SQLITE_SYNCHRONOUS must be NORMAL, FULL or EXTRA")
    return value


def sqlite_database(path: Path) -> dict:
    """The default database: one SQLite file, writes serialised by BEGIN IMMEDIATE."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return {
        # Django's SQLite backend, keeping closed connections for the process's next thread.
        "ENGINE": "config.kept_sqlite3",
        "NAME": str(path),
        "CONN_MAX_AGE": _sqlite_conn_max_age(),
        # IMMEDIATE takes the write lock when a transaction starts, so the audit chain head
        # is read and advanced by one writer at a time.
        # WAL: readers never wait for the writer, and a commit costs a quarter of what the
        # rollback journal costs here (measured for issue 9's API-to-running path).
        # synchronous=NORMAL (SQLite's advice for WAL): a commit no longer waits for fsync
        # (0.39 ms median, 4 ms at p90 here, five commits per create); the file stays
        # consistent after any crash; only a power loss or an OS crash can take back the last
        # commits.
        # BERTH_SQLITE_SYNCHRONOUS=FULL restores an fsync per commit.
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": f"PRAGMA journal_mode=WAL; PRAGMA synchronous={_sqlite_sync()}",
        },
    }
