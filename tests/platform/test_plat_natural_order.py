"""Containers page in natural name order from the indexed sort_name column (issue 19): the key's
order, the column kept with renames, and a dashboard page that reads only its own rows."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from containers.models import Container
from containers.services import do_rename_container
from containers.sorting import MAX_KEY_LENGTH, natural_sort_key
from tests.platform.factories import make_container

pytestmark = pytest.mark.django_db


def test_key_orders_numbers_as_numbers_and_letters_without_case():
    names = ["web-10", "web-2", "Web-3", "web", "a-b", "a1", "db-007", "db-7", "db-10"]
    ordered = sorted(names, key=natural_sort_key)
    assert ordered == ["a1", "a-b", "db-007", "db-7", "db-10", "web", "web-2", "Web-3", "web-10"]
    # Only hexadecimal digits: every database collation orders them like bytes.
    assert re.fullmatch(r"[0-9a-f]+", natural_sort_key("Web-3.x_y"))
    # The longest names fit the column.
    for worst in ("a1" * 64, "1" * 128, "x" * 128):
        assert len(natural_sort_key(worst)) <= MAX_KEY_LENGTH


def test_rows_keep_their_key_through_create_save_and_rename(teams, host, users):
    row = make_container(teams["alpha"], host, "tp-n-2")
    assert Container.objects.get(pk=row.pk).sort_name == natural_sort_key("tp-n-2")
    do_rename_container(row, "tp-n-10", acting_user=users["admin"])
    assert Container.objects.get(pk=row.pk).sort_name == natural_sort_key("tp-n-10")
    row.name = "tp-n-3"
    row.save(update_fields=["name"])
    assert Container.objects.get(pk=row.pk).sort_name == natural_sort_key("tp-n-3")


def test_dashboard_reads_one_page_of_rows_in_natural_order(teams, host, users, client):
    for n in range(120, 0, -1):
        make_container(teams["alpha"], host, f"tp-page-{n}")
    client.force_login(users["admin"])
    with CaptureQueriesContext(connection) as queries:
        html = client.get("/containers/?page=2").content.decode()
    names = re.findall(r">(tp-page-\d+)</a>", html)
    assert names == [f"tp-page-{n}" for n in range(51, 101)]
    # No query reads every row's name: the page's rows come with LIMIT 50.
    listing = [q["sql"] for q in queries.captured_queries if "sort_name" in q["sql"]]
    assert listing and all("LIMIT 50" in sql for sql in listing), listing
    last = client.get("/containers/?page=3&sort=-name").content.decode()
    assert re.findall(r">(tp-page-\d+)</a>", last) == [f"tp-page-{n}" for n in range(20, 0, -1)]
