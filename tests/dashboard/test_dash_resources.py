"""Images, networks and volumes from the dashboard: queued through the gate like the API's."""

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from audit.models import AuditEvent
from images.models import Image
from networks.models import Network
from operations.models import Operation
from volumes.models import Volume

pytestmark = pytest.mark.django_db


def test_developer_creates_and_removes_a_network(login, teams, host):
    client = login("developer")
    page = client.get("/networks/").content.decode()
    assert 'id="network-form"' in page and "td-beta" not in page
    response = client.post(
        "/networks/new/",
        {"name": "td-net", "subnet": "10.91.0.0/24", "team": teams["alpha"].pk, "host": host.pk},
    )
    assert response.status_code == 302
    net = Network.objects.get(name="td-net")
    assert net.team == teams["alpha"] and net.subnet == "10.91.0.0/24"
    assert Operation.objects.get().kind == "network.create"
    assert client.post(f"/networks/{net.pk}/remove/").status_code == 302
    assert Operation.objects.filter(kind="network.remove", target_id=str(net.pk)).exists()
    fragment = client.get("/operations/?kind=network.", HTTP_HX_REQUEST="true").content.decode()
    assert "network.create" in fragment and "network.remove" in fragment


def test_network_in_another_team_or_bad_input_is_refused(login, teams, host):
    client = login("developer")
    client.post("/networks/new/", {"name": "td-x", "team": teams["beta"].pk, "host": host.pk})
    client.post(
        "/networks/new/", {"name": "Not a slug!", "team": teams["alpha"].pk, "host": host.pk}
    )
    client.post(
        "/networks/new/",
        {"name": "td-y", "subnet": "nope", "team": teams["alpha"].pk, "host": host.pk},
    )
    assert not Network.objects.exists() and not Operation.objects.exists()


def test_viewer_cannot_create_volumes(login, teams, host):
    page = login("viewer").get("/volumes/").content.decode()
    assert 'id="volume-form"' not in page
    response = login("viewer").post(
        "/volumes/new/", {"name": "td-v", "team": teams["alpha"].pk, "host": host.pk}
    )
    assert response.status_code == 403
    assert not Volume.objects.exists()
    assert AuditEvent.objects.filter(
        actor="td-viewer", action="volume.create", outcome="denied"
    ).exists()


def test_developer_creates_a_volume(login, teams, host):
    response = login("developer").post(
        "/volumes/new/", {"name": "td-data", "team": teams["alpha"].pk, "host": host.pk}
    )
    assert response.status_code == 302
    assert Volume.objects.get(name="td-data").team == teams["alpha"]
    assert Operation.objects.get().kind == "volume.create"


def test_image_import_upload_is_queued(login, teams, host, settings, tmp_path):
    settings.UPLOAD_DIR = tmp_path
    archive = SimpleUploadedFile("rootfs.tar", b"x" * 1024, content_type="application/x-tar")
    response = login("developer").post(
        "/images/import/",
        {"host": host.pk, "team": teams["alpha"].pk, "ref": "td/app:1", "archive": archive},
    )
    assert response.status_code == 302
    op = Operation.objects.get(kind="image.import")
    assert (
        op.team == teams["alpha"]
        and op.params["ref"] == "td/app:1"
        and Path(op.params["path"]).read_bytes() == b"x" * 1024
    )
    archive = SimpleUploadedFile("rootfs.tar", b"x")
    login("developer").post(
        "/images/import/", {"host": host.pk, "ref": "Bad Ref", "archive": archive}
    )
    assert Operation.objects.filter(kind="image.import").count() == 1
    assert login("viewer").post("/images/import/", {"host": host.pk}).status_code == 403


def test_image_tag_and_remove(login, teams, host):
    image = Image.objects.create(
        host=host, team=teams["alpha"], image_id="sha256:" + "a" * 64, repo_tags=["td:1"]
    )
    page = login("developer").get(f"/images/{image.pk}/").content.decode()
    assert (
        "td:1" in page and "Tag" in page and "Remove" not in page
    )  # developers may not delete images
    assert login("developer").post(f"/images/{image.pk}/tag/", {"ref": "td:2"}).status_code == 302
    assert Operation.objects.get().params == {"tag": "td:2"}
    assert login("developer").post(f"/images/{image.pk}/delete/").status_code == 403
    assert login("admin").post(f"/images/{image.pk}/delete/").status_code == 302
    assert Operation.objects.filter(kind="image.remove").count() == 1
