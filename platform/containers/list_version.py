"""The container list's version on SQLite: a token that database triggers replace with a
random one on every write to what the list shows (issue 19).

A served page of 10 spent about a sixth of its time reading and decoding its rows again,
although nothing had changed since the last request. With the token read first, a process may
answer the same page (same gate restriction, page and size) from the rows it rendered while
the token stays the same. The triggers are the database's own: every writer (the web, the
agents, a raw statement, a restore) changes the token in the transaction that changes a row.
A token is never reused (random, not a counter), so a database restored from a backup cannot
bring back a token whose rows a process still holds.

Rows read after the token are at least as new as it: a page cached under a token is never
older than what that token stands for, and a newer token is a miss.

Only where every trigger is in place (a migrated SQLite file; not PostgreSQL, not a database
whose triggers were dropped) is there a token; None otherwise: no cache.
"""

import sqlite3

# (table, the writes that change what the list shows of it)
WATCHED = (
    ("containers_container", ("INSERT", "UPDATE", "DELETE")),
    ("health_containerhealth", ("INSERT", "UPDATE", "DELETE")),
    ("accounts_team", ("UPDATE OF name", "DELETE")),
    ("hosts_host", ("UPDATE OF name", "DELETE")),
)
TABLE = "containers_listversion"
PREFIX = "containers_listversion_"
# The token, and how many of the triggers are in place (one statement: 11 us here; a count
# kept per schema version would not do, as a rolled-back change of the schema gives its
# version number again to another schema).
_SELECT = (
    f"SELECT token, (SELECT count(*) FROM sqlite_master WHERE type = 'trigger' "
    f"AND name LIKE '{PREFIX}%') FROM \"{TABLE}\" WHERE id = 1"
)


def _triggers():
    """(name, write, table) of each trigger."""
    for table, writes in WATCHED:
        for write in writes:
            yield f"{PREFIX}{table}_{write.split()[0].lower()}", write, table


def trigger_statements() -> list[str]:
    """CREATE TRIGGER statements of the watched writes (SQLite)."""
    return [
        f'CREATE TRIGGER IF NOT EXISTS "{name}" AFTER {write} ON "{table}" BEGIN '
        f'UPDATE "{TABLE}" SET token = lower(hex(randomblob(8))) WHERE id = 1; END'
        for name, write, table in _triggers()
    ]


def drop_statements() -> list[str]:
    """DROP TRIGGER statements of the watched writes."""
    return [f'DROP TRIGGER IF EXISTS "{name}"' for name, _, _ in _triggers()]


EXPECTED = len(trigger_statements())


def current(connection) -> str | None:
    """The list's token on this Django connection's database, read now; None when there is
    none (PostgreSQL, a trigger missing, the row gone, an error): then nothing is cached."""
    if connection.vendor != "sqlite" or connection.connection is None:
        return None
    try:
        row = connection.connection.execute(_SELECT).fetchone()
    except sqlite3.Error:
        return None
    if row is None or not row[0] or row[1] != EXPECTED:
        return None
    return row[0]
