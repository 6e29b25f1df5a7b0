"""The API's orjson renderer (api/renderers.py) answers what DRF's JSONRenderer answers."""

import datetime
import decimal
import json
import uuid

from django.utils.translation import gettext_lazy
from rest_framework.renderers import JSONRenderer

from api.renderers import FastJSONRenderer

AWARE = datetime.datetime(2026, 12, 5, 12, 0, 1, 123456, tzinfo=datetime.UTC)

SAMPLES = [
    {"results": [{"id": 1, "name": "web-1", "labels": {"a": "b"}, "ok": True, "none": None}]},
    {"text": "ünïcødé ✓ \u2028 line \u2029 para", "quote": '"\\</script>'},
    {
        "lazy": gettext_lazy("Not found."),
        "decimal": decimal.Decimal("1.50"),
        "id": uuid.UUID(int=7),
    },
    {"when": AWARE, "day": datetime.date(2026, 12, 5), "naive": datetime.datetime(2026, 1, 2, 3)},
    {"span": datetime.timedelta(seconds=90), "nested": [[1, 2.5, -3], {"k": []}], 5: "int key"},
    {"big": 2**70, "neg": -(2**70)},  # past 64 bits: DRF's way
    [],
    "plain string",
]


def test_same_bytes_as_drf_for_every_sample():
    for data in SAMPLES:
        fast = FastJSONRenderer().render(data, "application/json")
        slow = JSONRenderer().render(data, "application/json")
        assert json.loads(fast) == json.loads(slow), data
        assert fast == slow, (fast, slow)


def test_indented_answers_and_none_go_drfs_way():
    data = {"a": [1, 2]}
    indented = FastJSONRenderer().render(data, "application/json; indent=2", {})
    assert indented == JSONRenderer().render(data, "application/json; indent=2", {})
    assert b"\n" in indented
    assert FastJSONRenderer().render(None) == b""


def test_api_answers_through_it(api):
    answer = api("admin").get("/api/v1/containers/")
    assert answer.status_code == 200
    assert answer.accepted_renderer.__class__ is FastJSONRenderer
    assert json.loads(answer.content)["results"] == []
