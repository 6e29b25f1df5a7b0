"""DATABASE_URL (config/env.py): PostgreSQL connections bind parameters on the server and
prepare what they run often, unless the URL turns it off; on PostgreSQL, a repeated query is
a prepared statement."""

import os

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from config.env import database_from_url


def test_defaults_bind_on_the_server_and_prepare_after_five_runs():
    db = database_from_url("postgres://berth:s3cret@db.example:5433/berth?sslmode=require")
    assert db["OPTIONS"] == {
        "sslmode": "require",
        "server_side_binding": True,
        "prepare_threshold": 5,
    }
    assert (db["NAME"], db["USER"], db["PASSWORD"], db["HOST"], db["PORT"]) == (
        "berth", "berth", "s3cret", "db.example", "5433",
    )  # fmt: skip


def test_the_url_turns_both_off_for_a_transaction_pooler():
    db = database_from_url("postgres://u@h/berth?server_side_binding=false&prepare_threshold=off")
    assert db["OPTIONS"]["server_side_binding"] is False
    assert db["OPTIONS"]["prepare_threshold"] is None


def test_bad_urls_refused():
    with pytest.raises(ImproperlyConfigured, match="unsupported scheme"):
        database_from_url("mysql://u@h/berth")
    with pytest.raises(ImproperlyConfigured, match="needs a database name"):
        database_from_url("postgres://u@h/")


@pytest.mark.django_db
def test_a_repeated_query_is_prepared_on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only (scripts/test runs this file again on PostgreSQL)")
    from accounts.models import User

    for pk in range(7):
        list(User.objects.filter(pk=pk))
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        statements = [row[0] for row in cursor.fetchall()]
    assert any('FROM "accounts_user"' in s and "$1" in s for s in statements), statements


def test_sqlite_threads_keep_their_connection_only_when_told(tmp_path, monkeypatch):
    """config/env.py: BERTH_SQLITE_CONN_MAX_AGE (config/http_server.py sets 60 for its
    threads, which live on); closed after every request otherwise."""
    from config.env import sqlite_database

    monkeypatch.delenv("BERTH_SQLITE_CONN_MAX_AGE", raising=False)
    assert sqlite_database(tmp_path / "a.sqlite3")["CONN_MAX_AGE"] == 0
    monkeypatch.setenv("BERTH_SQLITE_CONN_MAX_AGE", "60")
    assert sqlite_database(tmp_path / "a.sqlite3")["CONN_MAX_AGE"] == 60
    for bad in ("-1", "1.5", "forever", "٣", "86401"):
        monkeypatch.setenv("BERTH_SQLITE_CONN_MAX_AGE", bad)
        with pytest.raises(ImproperlyConfigured, match="BERTH_SQLITE_CONN_MAX_AGE"):
            sqlite_database(tmp_path / "a.sqlite3")


def test_the_production_server_keeps_its_threads_connections(monkeypatch):
    from config import http_server

    seen = {}
    # serve() sets its defaults in the environment: a copy of it, so that none stays behind.
    environ = {k: v for k, v in os.environ.items() if k != "BERTH_SQLITE_CONN_MAX_AGE"}
    monkeypatch.setattr(os, "environ", environ)
    monkeypatch.setattr(http_server, "preload", lambda: seen.update(os.environ))
    monkeypatch.setattr(http_server, "fresh_metrics_directory", lambda: None)

    class Stop(Exception):
        pass

    def no_server(*args, **kwargs):
        raise Stop

    monkeypatch.setattr("granian.server.Server", no_server)
    with pytest.raises(Stop):
        http_server.serve()
    assert seen["BERTH_SQLITE_CONN_MAX_AGE"] == "60"
