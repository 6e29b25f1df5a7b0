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


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT %s",
        "SELECT x FROM t WHERE x = %s AND y LIKE '%%a%%'",
        "SELECT '100%%', %s, %s",
        "UPDATE t SET x = %s WHERE id IN (" + ", ".join(["%s"] * 2000) + ")",  # past the limit
    ],
)
def test_a_kept_conversion_is_djangos(sql):
    from django.db.backends.sqlite3.base import SQLiteCursorWrapper

    raw = sqlite3.connect(":memory:")
    try:
        ours, djangos = raw.cursor(kept.CursorWrapper), raw.cursor(SQLiteCursorWrapper)
        for _ in range(2):  # converted, then kept
            assert ours.convert_query(sql) == djangos.convert_query(sql)
        assert (sql in kept._qmark) == (len(sql) <= kept.QMARK_LONGEST)
        named = "SELECT %(a)s, %(b)s"
        assert ours.convert_query(named, param_names=["a", "b"]) == "SELECT :a, :b"
    finally:
        raw.close()


def test_the_kept_conversions_are_bounded(monkeypatch):
    monkeypatch.setattr(kept, "_qmark", {})
    raw = sqlite3.connect(":memory:")
    try:
        cursor = raw.cursor(kept.CursorWrapper)
        for i in range(kept.QMARK_KEPT + 10):
            cursor.convert_query(f"SELECT %s, {i}")
        assert len(kept._qmark) <= kept.QMARK_KEPT
        assert cursor.execute("SELECT %s, %s", (1, 2)).fetchone() == (1, 2)
    finally:
        raw.close()
