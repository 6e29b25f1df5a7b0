"""One SQLite file summarizing every container's record and state, so listing reads one file.

The container's own files (config.json, state.json) stay the truth; the index is a cache the
store updates beside them (runtime/container/store.py) and checks against the directory's
names on every read. Each write marks the row dirty before the file changes and clean after:
a writer killed in between leaves a dirty row, which readers take from the files instead.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import orjson

# Parts of a record that list() never shows and that make it large (image config, layers).
_HEAVY = ("image_config", "lower", "device_rules")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    rec TEXT,
    state TEXT,
    dirty INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS views (
    id TEXT PRIMARY KEY,
    gen INTEGER NOT NULL DEFAULT 0,
    vkey TEXT,
    view TEXT
)
"""


def command_line(spec: dict, image_cfg: dict) -> list[str]:
    """What runs, by Docker's rule (as runtime.container.plan.command_line, on the spec's dict
    form, so that listing needs neither the typed spec nor plan's imports)."""
    entry, cmd = spec.get("entrypoint"), spec.get("command")
    if entry is not None:
        return list(entry) + (list(cmd) if cmd is not None else [])
    return list(image_cfg.get("Entrypoint") or []) + (
        list(cmd) if cmd is not None else list(image_cfg.get("Cmd") or [])
    )


def _text(value) -> str:
    """JSON text for a column (orjson: the index is written at every state change)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


class ContainerIndex:
    """The index file `containers/.index.db` of one state root."""

    def __init__(self, containers_dir: Path):
        self.path = Path(containers_dir) / ".index.db"
        self._local = threading.local()

    @staticmethod
    def summary(rec: dict) -> dict:
        """The record without what list() does not need (the image's command line is kept)."""
        slim = {k: v for k, v in rec.items() if k not in _HEAVY}
        cfg = (rec.get("image_config") or {}).get("config") or {}
        slim["image_config"] = {
            "config": {k: cfg[k] for k in ("Entrypoint", "Cmd") if cfg.get(k) is not None}
        }
        slim["command"] = command_line(rec.get("spec") or {}, cfg)
        return slim

    def _db(self) -> sqlite3.Connection | None:
        """This thread's connection (a forked child opens its own); None before any container."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        if not self.path.parent.is_dir():
            return None
        fresh = not self.path.exists()
        if fresh:
            # Created private: it holds every container's spec (environment included).
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=NORMAL")
            # WAL: readers never wait for writers; the setting stays with the file.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _run(self, sql: str, args=()) -> list:
        """Run one statement; a damaged index file is set aside and started afresh."""
        for attempt in (0, 1):
            try:
                conn = self._db()
                if conn is None:
                    return []
                return conn.execute(sql, args).fetchall()
            except sqlite3.DatabaseError as err:
                if attempt or isinstance(err, sqlite3.OperationalError):
                    raise
                self._discard()
        return []

    def _discard(self) -> None:
        """Drop a corrupt index: the next read rebuilds it from the files."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def put(self, cid: str, rec: dict | None, state: dict | None) -> None:
        """Record `rec` and/or `state` for `cid` (None: keep that part) and one write done."""
        if rec is not None and state is not None:
            self._run(
                "INSERT OR REPLACE INTO containers (id, rec, state, dirty) VALUES (?, ?, ?, 0)",
                (cid, _text(self.summary(rec)), _text(state)),
            )
        elif rec is not None:
            self._run(
                "UPDATE containers SET rec = ?, dirty = max(dirty - 1, 0) WHERE id = ?",
                (_text(self.summary(rec)), cid),
            )
        elif state is not None:
            self._run(
                "UPDATE containers SET state = ?, dirty = max(dirty - 1, 0) WHERE id = ?",
                (_text(state), cid),
            )

    def mark_dirty(self, cid: str) -> None:
        """Say a file of `cid` is about to change (undone by the put() that follows)."""
        self._run("UPDATE containers SET dirty = dirty + 1 WHERE id = ?", (cid,))

    def drop(self, cids) -> None:
        """Forget removed containers."""
        for cid in cids:
            self._run("DELETE FROM containers WHERE id = ?", (cid,))
            self._run("DELETE FROM views WHERE id = ?", (cid,))

    def clear(self) -> None:
        """Forget everything (a rebuild follows)."""
        self._run("DELETE FROM containers")
        self._run("DELETE FROM views")

    def rows(self, only=None) -> dict[str, tuple[dict, dict, bool]]:
        """{id: (summary record, state, dirty)} of every indexed container (or of `only`)."""
        if only is None:
            got = self._run("SELECT id, rec, state, dirty FROM containers")
        else:
            got, only = [], list(only)
            for at in range(0, len(only), 500):  # SQLite's limit on bound parameters
                part = only[at : at + 500]
                marks = ",".join("?" * len(part))
                got += self._run(
                    f"SELECT id, rec, state, dirty FROM containers WHERE id IN ({marks})", part
                )
        found = {}
        for cid, rec, state, dirty in got:
            try:
                found[cid] = (orjson.loads(rec), orjson.loads(state or "{}"), bool(dirty))
            except (TypeError, ValueError):
                found[cid] = ({}, {}, True)  # unreadable: taken from the files
        return found

    # -- list views: each container's composed list() entry, kept until something changes ----
    # A view is valid while its row is clean, its generation unchanged (every release of the
    # container's lock bumps it: pause and unpause change no file) and its key (the change times
    # of the container's two directories, where every file write, the shim's exit record and its
    # pid file come and go) still matches: see runtime/container/listing.py.

    def invalidate(self, cid: str) -> None:
        """Forget `cid`'s list view and bump its generation (a view being computed meanwhile
        is then not stored)."""
        self._run(
            "INSERT INTO views (id, gen) VALUES (?, 1) "
            "ON CONFLICT(id) DO UPDATE SET gen = gen + 1, vkey = NULL, view = NULL",
            (cid,),
        )

    def forget_views(self) -> None:
        """Forget every list view (reconcile: the next list observes every container)."""
        self._run("UPDATE views SET gen = gen + 1, vkey = NULL, view = NULL")

    def views(self, spec: bool = True) -> dict[str, tuple[bool, int, str | None, str | None]]:
        """{id: (dirty, generation, key, view JSON)} of every indexed container; `spec=False`
        leaves each view's spec out (SQLite drops it: half the bytes `ps` would decode)."""
        view = "v.view" if spec else "json_remove(v.view, '$.spec')"
        return {
            cid: (bool(dirty), gen or 0, vkey, text)
            for cid, dirty, gen, vkey, text in self._run(
                f"SELECT c.id, c.dirty, v.gen, v.vkey, {view} "
                "FROM containers c LEFT JOIN views v ON v.id = c.id"
            )
        }

    def store_views(self, items) -> None:
        """Store (id, generation read before observing, key, view JSON) in one transaction;
        each only if its generation is still the one read (nothing changed meanwhile)."""
        sql = (
            "INSERT INTO views (id, gen, vkey, view) SELECT ?, ?, ?, ? "
            "WHERE EXISTS (SELECT 1 FROM containers WHERE id = ?) "
            "ON CONFLICT(id) DO UPDATE SET vkey = excluded.vkey, view = excluded.view "
            "WHERE views.gen = excluded.gen"
        )
        try:
            conn = self._db()
            if conn is None:
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(sql, [(*item, item[0]) for item in items])
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.DatabaseError:
            return  # a cache: a reader that cannot write it (read-only, busy) lists anyway
