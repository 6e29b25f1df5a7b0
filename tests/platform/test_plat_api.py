"""Filters, search, ordering, pagination, error format and the OpenAPI schema."""

import pytest

from tests.platform.factories import make_container

pytestmark = pytest.mark.django_db


def test_filters_search_ordering(api, teams, host, containers):
    make_container(teams["alpha"], host, "tp-db-a", labels={"app": "db"}, observed_state="running")
    client = api("admin")
    names = lambda url: [c["name"] for c in client.get(url).json()["results"]]  # noqa: E731
    assert names("/api/v1/containers/?team=tp-alpha") == ["tp-db-a", "tp-web-a"]
    assert names("/api/v1/containers/?label=app=web") == ["tp-web-a"]
    assert names("/api/v1/containers/?label=app") == ["tp-db-a", "tp-web-a"]
    assert names("/api/v1/containers/?state=running") == ["tp-db-a"]
    assert names("/api/v1/containers/?search=web&ordering=-name") == ["tp-web-b", "tp-web-a"]
    assert names(f"/api/v1/containers/?host={host.pk}&image=busybox&page_size=1") == ["tp-db-a"]
    assert client.get("/api/v1/containers/?label=bad key").status_code == 400


def test_unknown_fields_and_bad_bodies_are_400(api, host):
    client = api("admin")
    for body in (
        {"team": "tp-alpha", "host": "tp-h1", "spec": {"image": "busybox"}, "HostConfig": {}},
        {"team": "tp-alpha", "host": "tp-h1", "spec": {"image": "busybox", "Binds": ["/:/h"]}},
        {"team": "tp-alpha", "host": "tp-h1"},
    ):
        response = client.post("/api/v1/containers/", body, format="json")
        assert response.status_code == 400, body
        assert response.json()["error"]["code"] == "invalid"
    response = client.post("/api/v1/containers/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"code", "message", "details"}


def test_request_id_is_echoed_and_audited(api, containers):
    from audit.models import AuditEvent

    response = api("admin").get(
        f"/api/v1/containers/{containers['alpha'].pk}/", HTTP_X_REQUEST_ID="tp-abc-123"
    )
    assert response["X-Request-ID"] == "tp-abc-123"
    event = AuditEvent.objects.get(request_id="tp-abc-123")
    assert (
        event.actor == "admin"
        and event.source_ip == "127.0.0.1"
        and event.object_id == str(containers["alpha"].pk)
    )


def test_audit_export_csv(api, containers):
    api("admin").get("/api/v1/containers/")
    response = api("auditor").get("/api/v1/audit/export/?action=container.view")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0].startswith("seq,time,actor") and any(",admin," in line for line in lines[1:])


def test_openapi_schema_and_docs(api):
    client = api("viewer")
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/containers/{id}/start/" in paths and "/api/v1/images/import/" in paths
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger-ui" in docs.content
    assert api().get("/api/schema/").status_code in (401, 403)


def test_image_import_by_upload(api, host, settings, tmp_path):
    import io

    from images.models import Image
    from operations.models import Operation

    settings.UPLOAD_DIR = tmp_path / "uploads"
    upload = io.BytesIO(b"not really a tar, the agent checks it")
    upload.name = "img.tar"
    body = {"file": upload, "ref": "tp/app:1", "host": "tp-h1", "team": "tp-alpha"}
    response = api("developer").post("/api/v1/images/import/", body, format="multipart")
    assert response.status_code == 202, response.content
    op = Operation.objects.get(pk=response.json()["operation"]["id"])
    assert op.kind == "image.import" and op.params["ref"] == "tp/app:1"
    assert (tmp_path / "uploads").iterdir().__next__().read_bytes().startswith(b"not really")
    assert not Image.objects.exists()  # the agent creates the row once imported
    upload.seek(0)
    response = api("viewer").post(
        "/api/v1/images/import/", {"file": upload, "host": "tp-h1"}, format="multipart"
    )
    assert response.status_code == 403


def test_created_objects_are_named_in_the_audit(api):
    from audit.models import AuditEvent

    response = api("admin").post("/api/v1/teams/", {"name": "tp-gamma"}, format="json")
    assert response.status_code == 201
    event = AuditEvent.objects.get(action="team.create", outcome="allowed")
    assert event.object_id == str(response.json()["id"]) and event.object_repr == "tp-gamma"
