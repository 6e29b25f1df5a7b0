"""Django's SQLite backend, with a process's idle connections kept for its next thread (and
each SQL text's placeholder conversion kept, see CursorWrapper; the WAL checkpointed by a
thread of the process, see checkpoint.py).

The web servers and the Docker API listener run each request on a thread of its own, and
Django's connections are per thread, so every request opened the database file again; a new
SQLite connection parses the whole schema on its first statement (0.7 ms median here, several
ms on a loaded machine; a `docker run -d` makes four requests). Here a closed connection goes
back to a small per-process list instead, and the next thread's connect takes it from there.

Only a connection that is fit is kept: no transaction open, no error since it was opened, a
file database (an in-memory one is never closed by Django anyway). Everything Django sets up
per connect (autocommit, the connection_created signal) still runs on a kept one; the
pragmas and SQL functions set on the raw connection stay as they were set.
"""

import os
import threading

from django.conf import settings
from django.db.backends.sqlite3 import base

from config.kept_sqlite3 import checkpoint

KEPT_PER_PROCESS = 8
_lock = threading.Lock()
_idle: dict[tuple, list] = {}

# Each SQL text's conversion from Django's "format" style to the qmark style sqlite3 takes,
# kept per process: the same texts come again and again (the ORM's, the container list's
# compiled page), and the regular expression over a long SELECT cost about 4 % of an API list
# request (issue 19). Bounded: at most QMARK_KEPT texts (cleared when full), none longer than
# QMARK_LONGEST (an IN list of ids makes a new text each time).
QMARK_KEPT = 512
QMARK_LONGEST = 4096
_qmark: dict[str, str] = {}


class CursorWrapper(base.SQLiteCursorWrapper):
    """Django's SQLite cursor, with each SQL text's conversion kept (`_qmark`)."""

    def convert_query(self, query, *, param_names=None):
        if param_names is not None or len(query) > QMARK_LONGEST:
            return super().convert_query(query, param_names=param_names)
        converted = _qmark.get(query)
        if converted is None:
            converted = super().convert_query(query)
            if len(_qmark) >= QMARK_KEPT:
                _qmark.clear()
            _qmark[query] = converted
        return converted


class DatabaseWrapper(base.DatabaseWrapper):
    """SQLite whose closed connections serve the process's next connect."""

    def create_cursor(self, name=None):
        return self.connection.cursor(factory=CursorWrapper)

    def _kept_key(self) -> tuple:
        # Per process: a forked child must not use its parent's file handles.
        return (os.getpid(), self.settings_dict["NAME"])

    def get_new_connection(self, conn_params):
        with _lock:
            idle = _idle.get(self._kept_key())
            conn = idle.pop() if idle else None
        if conn is not None:
            return conn
        conn = super().get_new_connection(conn_params)
        if self._checkpoints_in_background(conn):
            # The process's thread checkpoints (config/kept_sqlite3/checkpoint.py); a commit
            # of this connection does it only past SAFETY_PAGES (a WAL that keeps growing).
            conn.execute(f"PRAGMA wal_autocheckpoint={checkpoint.SAFETY_PAGES}")
        return conn

    def _checkpoints_in_background(self, conn) -> bool:
        """Whether a thread of this process checkpoints this file's WAL (started here if need
        be): a file database in WAL mode, unless BERTH_SQLITE_CHECKPOINT_THREAD is off."""
        if not getattr(settings, "BERTH_SQLITE_CHECKPOINT_THREAD", False) or self.is_in_memory_db():
            return False
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            return False
        return checkpoint.ensure_running(self.settings_dict["NAME"])

    def _close(self):
        conn = self.connection
        if (
            conn is not None
            and not self.is_in_memory_db()
            and not self.errors_occurred
            and not self.in_atomic_block
            and not conn.in_transaction
        ):
            with _lock:
                idle = _idle.setdefault(self._kept_key(), [])
                if len(idle) < KEPT_PER_PROCESS:
                    idle.append(conn)
                    return
        super()._close()
