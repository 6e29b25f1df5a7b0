"""config.kept_sqlite3: a closed SQLite connection serves the process's next thread, only if fit."""

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import DatabaseError
from django.db.utils import ConnectionHandler

from config.kept_sqlite3 import base as kept


@pytest.fixture
def handler(tmp_path, django_db_blocker):
    kept._idle.clear()
    # A database of its own (a file: in-memory ones are never kept), outside the test database.
    with django_db_blocker.unblock():
        yield ConnectionHandler(
            {"default": {"ENGINE": "config.kept_sqlite3", "NAME": str(tmp_path / "k.sqlite3")}}
        )
    for conns in kept._idle.values():
        for conn in conns:
            conn.close()
    kept._idle.clear()


def in_thread(fn):
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result()


def test_a_closed_connection_serves_the_next_thread(handler):
    def first():
        db = handler["default"]
        with db.cursor() as cursor:
            cursor.execute("CREATE TABLE t (x INTEGER)")
            cursor.execute("INSERT INTO t VALUES (1)")
        raw = db.connection
        db.close()
        return raw

    def second():
        db = handler["default"]
        with db.cursor() as cursor:
            cursor.execute("SELECT x FROM t")
            rows = cursor.fetchall()
        raw = db.connection
        assert db.get_autocommit()
        db.close()
        return raw, rows

    raw = in_thread(first)
    again, rows = in_thread(second)
    assert again is raw and rows == [(1,)]


def test_a_connection_after_an_error_or_in_a_transaction_is_closed(handler):
    def failing():
        db = handler["default"]
        with pytest.raises(DatabaseError), db.cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table")
        raw = db.connection
        db.close()
        return raw

    def open_transaction():
        db = handler["default"]
        db.ensure_connection()
        raw = db.connection
        raw.execute("BEGIN")
        db.close()
        return raw

    for step in (failing, open_transaction):
        raw = in_thread(step)
        assert not any(raw in conns for conns in kept._idle.values())
        with pytest.raises(sqlite3.ProgrammingError):  # closed, not kept
            raw.execute("SELECT 1")


def test_at_most_a_few_are_kept(handler):
    wrappers = []

    def hold():
        db = handler["default"]
        db.ensure_connection()
        wrappers.append(db)

    threads = [threading.Thread(target=hold) for _ in range(kept.KEPT_PER_PROCESS + 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(db.connection) for db in wrappers}) == len(threads)
    for db in wrappers:
        db.inc_thread_sharing()  # closed from this thread, as a server's cleanup may
        db.close()
    assert sum(len(conns) for conns in kept._idle.values()) == kept.KEPT_PER_PROCESS
