"""DATABASE_URL (config/env.py): PostgreSQL connections bind parameters on the server and
prepare what they run often, unless the URL turns it off; on PostgreSQL, a repeated query is
a prepared statement."""

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
