"""The generation of who may do what: one row in the database (rbac.models.AuthzGeneration),
given a new value on every change to users, API tokens, teams, memberships, roles and role
bindings (issue 15).

Token lookups and grants are cached per process only together with the generation read at the
start of the request, before anything else: an entry is used only while the row still holds
that generation. A change writes a new generation in its own transaction, so the two commit
together: the request after a revocation (or a removed binding, a deactivated user) reads the
database again, with no revocation delay; readers during the change's transaction still see the
old rows and the old generation, and what they cache under it is never used again. Reading it is
one primary-key SELECT on the request's own connection: on SQLite, in-process (tens of
microseconds); it was a Redis GET, whose round trip cost 0.35 ms of a 1.7 ms container list,
and more on an idle machine where each process must be woken (issue 19).

When the row cannot be read (an agent's PostgreSQL role set up before the table existed, see
agent/dbroles.py) nothing is cached: every request reads the database. Entries also expire
after MAX_AGE seconds: a backstop for a change made behind the ORM's back (raw SQL), which no
signal reports.
"""

import contextlib
import logging
import os
import secrets
import sqlite3
import threading
import time

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections

log = logging.getLogger(__name__)

MAX_AGE = 30.0
_caches: list["GenerationCache"] = []
_readable: dict[tuple, bool] = {}  # (pid, database user) -> may that user read the row?


def _table() -> str:
    from rbac.models import AuthzGeneration

    return AuthzGeneration._meta.db_table


def _may_read(cursor) -> bool:
    """Whether this process's database user may read the row. Asked once per process on
    PostgreSQL, where an agent's role set up before the table existed may not: a refused
    SELECT would abort the caller's transaction (the agent's operations run inside one), and
    has_table_privilege() only answers false."""
    if connection.vendor != "postgresql":
        return True
    key = (os.getpid(), connection.settings_dict.get("USER"))
    if key not in _readable:
        cursor.execute("SELECT has_table_privilege(%s, 'SELECT')", [_table()])
        _readable[key] = bool(cursor.fetchone()[0])
        if not _readable[key]:
            log.warning(
                "authorization cache off: %s may not read %s (run agent_db_role --setup again)",
                key[1],
                _table(),
            )
    return _readable[key]


def _select() -> str:
    global _SELECT
    if _SELECT is None:
        _SELECT = f'SELECT value FROM "{_table()}" WHERE id = 1'  # noqa: S608
    return _SELECT


_SELECT: str | None = None


def current() -> str | None:
    """The generation now; None when it cannot be read (then cache nothing)."""
    sql = _select()
    db = connections[DEFAULT_DB_ALIAS]  # once: each attribute of `connection` is a lookup
    if db.vendor == "sqlite" and not db.needs_rollback and _may_read(None):
        # Every API request reads it first: straight through the driver's connection (Django's
        # cursor, checks and wrapping around the one statement were most of the read, issue
        # 19). Any error goes the general way below, which reports it as Django does.
        try:
            if db.connection is None:
                db.ensure_connection()
            return _read(db.connection.execute(sql).fetchone())
        except (sqlite3.Error, DatabaseError):
            pass
    try:
        with connection.cursor() as cursor:
            if not _may_read(cursor):
                return None
            cursor.execute(sql)
            row = cursor.fetchone()
    except DatabaseError as err:  # (SQLite) a database without the table: not migrated yet
        log.warning("authorization cache off: the generation cannot be read (%s)", err)
        return None
    return _read(row)


def _read(row) -> str | None:
    if row is None:  # an emptied table: start a generation nobody cached under
        with contextlib.suppress(DatabaseError):
            bump()
        return None
    return row[0]


def bump(**_signal_kwargs) -> None:
    """A change to who may do what: every cached token and grant is stale from the moment the
    current transaction (if any) commits."""
    for cache in _caches:
        cache.clear()
    from rbac.models import AuthzGeneration

    value = secrets.token_hex(8)
    if not AuthzGeneration.objects.filter(pk=1).update(value=value):  # an emptied table
        AuthzGeneration.objects.get_or_create(pk=1, defaults={"value": value})


class GenerationCache:
    """A per-process map whose entries hold only while the generation they were read under
    is current (and for at most MAX_AGE seconds)."""

    def __init__(self, size: int = 10000):
        self._data: dict = {}
        self._size = size
        self._lock = threading.Lock()
        _caches.append(self)

    def get(self, key, generation):
        """The value cached for `key` under `generation`, or None."""
        if generation is None:
            return None
        entry = self._data.get(key)
        if entry is None or entry[0] != generation or time.monotonic() - entry[1] > MAX_AGE:
            return None
        return entry[2]

    def put(self, key, generation, value) -> None:
        """Remember `value`, read from the database after `generation` was read."""
        if generation is None:
            return
        with self._lock:
            if len(self._data) >= self._size:
                self._data.clear()
            self._data[key] = (generation, time.monotonic(), value)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._data.clear()
