"""The container list at scale: live containers by default, removed ones on request and purged
after their retention, summary rows (the spec only in the detail view), a bounded number of
queries whatever the page size, and the schema of create, remove and ?wait."""

from datetime import timedelta

import pytest
import yaml
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from containers.models import Container
from containers.purge import purge_removed
from tests.platform.factories import make_container

pytestmark = pytest.mark.django_db
URL = "/api/v1/containers/"


def _names(client, url) -> list[str]:
    answer = client.get(url)
    assert answer.status_code == 200, answer.content
    return [c["name"] for c in answer.json()["results"]]


def _removed(team, host, name, age=timedelta(0)):
    row = make_container(team, host, name, observed_state="removed", desired_state="removed")
    Container.objects.filter(pk=row.pk).update(updated_at=timezone.now() - age)
    return row


def test_list_shows_live_containers_and_removed_on_request(api, teams, host, containers):
    gone = _removed(teams["alpha"], host, "tp-gone-a")
    client = api("admin")
    assert _names(client, URL) == ["tp-web-a", "tp-web-b"]
    assert _names(client, f"{URL}?state=removed") == ["tp-gone-a"]
    assert _names(client, f"{URL}?state=removed&team=tp-beta") == []
    # The count is of live containers: removed ones do not pile up in it.
    assert client.get(URL).json()["count"] == 2
    # A removed container's detail stays readable by id, spec and all.
    detail = client.get(f"{URL}{gone.pk}/").json()
    assert detail["observed_state"] == "removed" and detail["spec"]["name"] == "tp-gone-a"
    # The developer of alpha sees only alpha's, removed ones included on request.
    dev = api("developer")
    assert _names(dev, URL) == ["tp-web-a"]
    assert _names(dev, f"{URL}?state=removed") == ["tp-gone-a"]
    bad = client.get(f"{URL}?state=vanished")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid"


def test_rows_are_summaries_and_detail_has_the_spec(api, containers):
    client = api("admin")
    row = client.get(URL).json()["results"][0]
    assert "spec" not in row
    assert {"id", "name", "image", "observed_state", "desired_state", "labels"} <= set(row)
    detail = client.get(f"{URL}{row['id']}/").json()
    assert detail["spec"]["image"] == "busybox"
    # The row is the detail without the spec: same keys, same formats.
    Container.objects.filter(pk=row["id"]).update(
        observed_at=timezone.now(), exit_code=3, network_info={"ports": []}
    )
    row = next(r for r in client.get(URL).json()["results"] if r["id"] == row["id"])
    detail = client.get(f"{URL}{row['id']}/").json()
    assert row == {k: v for k, v in detail.items() if k != "spec"}


def test_list_queries_do_not_grow_with_rows(api, teams, host):
    client = api("admin")

    def queries(page_size: int) -> int:
        client.get(URL)  # warm: grants are cached across requests (rbac/generation.py)
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(f"{URL}?page_size={page_size}").status_code == 200
        return len(ctx.captured_queries)

    for i in range(3):
        make_container(teams["alpha"], host, f"tp-few-{i}")
    few = queries(500)
    for i in range(60):
        make_container(teams["alpha" if i % 2 else "beta"], host, f"tp-many-{i:02d}")
    many = queries(500)
    assert many == few
    assert len(client.get(f"{URL}?page_size=500").json()["results"]) == 63


def test_purge_drops_only_old_removed_rows(teams, host, containers, settings):
    settings.BERTH_REMOVED_RETENTION_SECONDS = 3600
    old = _removed(teams["alpha"], host, "tp-old", age=timedelta(hours=2))
    young = _removed(teams["alpha"], host, "tp-young", age=timedelta(minutes=5))
    assert purge_removed("tp-other-host") == 0  # another host's pass leaves these alone
    assert purge_removed(host.name) == 1
    left = set(Container.objects.values_list("name", flat=True))
    assert "tp-old" not in left and {"tp-young", "tp-web-a", "tp-web-b"} <= left
    assert not Container.objects.filter(pk=old.pk).exists()
    settings.BERTH_REMOVED_RETENTION_SECONDS = 0  # 0 keeps them forever
    Container.objects.filter(pk=young.pk).update(updated_at=timezone.now() - timedelta(days=90))
    assert purge_removed() == 0
    call_command("purge_removed_containers", "--older-than", "60")
    assert not Container.objects.filter(pk=young.pk).exists()
    assert Container.objects.filter(name__in=["tp-web-a", "tp-web-b"]).count() == 2


def test_schema_documents_wait_force_state_and_the_create_answer(tmp_path):
    out = tmp_path / "schema.yaml"
    # Validity and warnings are test_plat_schema_errors.py's: this reads what it documents.
    call_command("spectacular", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    paths = schema["paths"]
    create = paths["/api/v1/containers/"]["post"]
    for code in ("200", "202"):
        ref = create["responses"][code]["content"]["application/json"]["schema"]["$ref"]
        body = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
        assert set(body["properties"]) == {"operation", "container"}, code
    assert any(p["name"] == "wait" for p in create["parameters"])
    remove = paths["/api/v1/containers/{id}/"]["delete"]
    assert {"wait", "force"} <= {p["name"] for p in remove["parameters"]}
    assert {"200", "202"} <= set(remove["responses"])
    listing = paths["/api/v1/containers/"]["get"]
    state = next(p for p in listing["parameters"] if p["name"] == "state")
    assert "removed" in state["schema"]["enum"]
    row = listing["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    page = schema["components"]["schemas"][row.rsplit("/", 1)[1]]
    item = page["properties"]["results"]["items"]["$ref"].rsplit("/", 1)[1]
    assert "spec" not in schema["components"]["schemas"][item]["properties"]
