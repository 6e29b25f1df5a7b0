"""A consistent copy of the database, and putting one back.

SQLite: the online backup API (a consistent copy while writers keep writing). PostgreSQL:
`pg_dump --format=custom` (one snapshot) and `pg_restore --clean`. The password reaches the
PostgreSQL tools through PGPASSWORD in their environment, never on their command line.
"""

import errno
import os
import sqlite3
import subprocess
from pathlib import Path

from django.db import connection, connections

from config.errors import InvalidRequest, Unavailable

SQLITE_NAME = "db.sqlite3"
POSTGRES_NAME = "db.pgdump"


def vendor() -> str:
    """sqlite or postgresql."""
    return connection.vendor


def dump_name() -> str:
    """The file name of the dump in a set."""
    return SQLITE_NAME if vendor() == "sqlite" else POSTGRES_NAME


def _pg_env() -> tuple[list[str], dict]:
    db = connection.settings_dict
    args = ["--host", db.get("HOST") or "localhost", "--port", str(db.get("PORT") or 5432)]
    args += ["--username", db.get("USER") or "postgres", "--dbname", db["NAME"]]
    env = dict(os.environ, PGPASSWORD=db.get("PASSWORD") or "")
    return args, env


def _run(cmd: list[str], env: dict, what: str, target: Path | None = None) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        low = done.stderr.lower()
        # The target's own problems are named like any other write to it (backup.target_error).
        if target is not None and "no space left" in low:
            raise OSError(errno.ENOSPC, "no space left on device", str(target))
        if target is not None and "read-only file system" in low:
            raise OSError(errno.EROFS, "read-only file system", str(target))
        raise Unavailable(f"{what} failed: {done.stderr.strip()[-400:]}", code="backup_failed")


def _sqlite_live():
    """A connection to this install's SQLite database, and whether the caller closes it.

    A file gets its own connection (a consistent copy of what is committed); an in-memory
    database (the test settings) exists only inside Django's own connection.
    """
    name = str(connection.settings_dict["NAME"])
    if name == ":memory:" or "mode=memory" in name:
        connection.ensure_connection()
        return connection.connection, False
    return sqlite3.connect(name, timeout=30), True


def _as_os_error(err: sqlite3.OperationalError, target: Path) -> OSError:
    """SQLite's words for a full or read-only target, as the OSError the caller explains."""
    text = str(err).lower()
    if "full" in text:
        return OSError(errno.ENOSPC, "no space left on device", str(target))
    if "readonly" in text or "read-only" in text:
        return OSError(errno.EROFS, "read-only file system", str(target))
    return OSError(errno.EIO, str(err), str(target))


def dump(into: Path) -> Path:
    """Write a consistent copy of the database into the directory `into`; return the file."""
    target = into / dump_name()
    if vendor() == "sqlite":
        source, owned = _sqlite_live()
        dest = sqlite3.connect(target)
        try:
            if owned:
                with dest:
                    source.backup(dest, pages=4096)
            else:
                # Django's own in-memory connection, inside a test's open transaction: the
                # backup API would wait on that transaction for ever; its SQL text does not.
                dest.executescript(";\n".join(source.iterdump()) + ";")
        except sqlite3.OperationalError as err:
            raise _as_os_error(err, target) from None
        finally:
            dest.close()
            if owned:
                source.close()
    else:
        args, env = _pg_env()
        _run(
            ["pg_dump", "--format=custom", "--no-owner", "--file", str(target), *args],
            env,
            "pg_dump",
            target,
        )
    return target


def load(dump_file: Path) -> None:
    """Replace this install's database with the dump (the caller checked it may)."""
    if dump_file.name == SQLITE_NAME:
        if vendor() != "sqlite":
            raise InvalidRequest("this set holds an SQLite database; this install runs PostgreSQL")
        source = sqlite3.connect(dump_file)
        try:
            dest, owned = _sqlite_live()
            if owned:
                connections.close_all()  # Django reconnects and reads the restored pages
            source.backup(dest)
            if owned:
                dest.close()
        finally:
            source.close()
    else:
        if vendor() != "postgresql":
            raise InvalidRequest("this set holds a PostgreSQL dump; this install runs SQLite")
        connections.close_all()
        args, env = _pg_env()
        _run(
            ["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction", *args]
            + [str(dump_file)],
            env,
            "pg_restore",
        )
        connections.close_all()


def read_head(dump_file: Path) -> tuple[int, str] | None:
    """The audit chain's head (seq, hash) inside an SQLite dump; None for PostgreSQL."""
    if dump_file.name != SQLITE_NAME:
        return None
    conn = sqlite3.connect(f"file:{dump_file}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT seq, last_hash FROM audit_chainhead WHERE id = 1").fetchone()
    finally:
        conn.close()
    return (row[0], row[1]) if row else (0, "")
