"""Ids typed by clients: only ASCII digits that fit a database integer are ids."""

import pytest

from config.ids import as_id, is_id


@pytest.mark.parametrize("value", ["1", "42", "9" * 18])
def test_ids(value):
    assert is_id(value) and as_id(value) == int(value)


@pytest.mark.parametrize("value", ["", "²", "١٢", "9" * 19, "-1", "1.0", " 1", "0x1", "1\x00"])
def test_not_ids(value):
    assert not is_id(value) and as_id(value) is None


def test_odd_filters_and_bulk_ids_answer_without_a_server_error(client, django_user_model):
    admin = django_user_model.objects.create_superuser("ids-admin", password="x-password-1")
    client.force_login(admin)
    for query in ("team=²", "host=١٢", f"team={'9' * 30}", "host=²"):
        assert client.get(f"/api/v1/containers/?{query}").status_code == 200, query
        assert client.get(f"/containers/?{query}").status_code == 200, query
    bulk = client.post("/containers/bulk/", {"action": "stop", "ids": ["²", "9" * 30]})
    assert bulk.status_code < 500
