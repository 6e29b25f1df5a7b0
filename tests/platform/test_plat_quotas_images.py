"""Image quotas per team (count and bytes): checked in the transaction that writes the import's
operation; at the limit allowed, one over refused naming the quota, the use and the ask."""

import io

import pytest

from audit.models import AuditEvent
from images.models import Image
from operations.models import Operation

pytestmark = pytest.mark.django_db


def _quotas(api, team, quotas):
    response = api("admin").put(
        f"/api/v1/teams/{team.pk}/quotas/", {"quotas": quotas}, format="json"
    )
    assert response.status_code == 200, response.content


def _import(api, size: int, who="developer"):
    upload = io.BytesIO(b"x" * size)
    upload.name = "img.tar"
    body = {"file": upload, "ref": "tp/app:1", "host": "tp-h1", "team": "tp-alpha"}
    return api(who).post("/api/v1/images/import/", body, format="multipart")


@pytest.fixture
def uploads(settings, tmp_path):
    settings.UPLOAD_DIR = tmp_path / "uploads"
    return settings.UPLOAD_DIR


def test_image_count_quota(api, host, teams, uploads):
    Image.objects.create(host=host, team=teams["alpha"], image_id="sha256:" + "a" * 64, size=10)
    Image.objects.create(host=host, team=None, image_id="sha256:" + "b" * 64, size=10)  # public
    _quotas(api, teams["alpha"], {"images": 2})
    assert _import(api, 100).status_code == 202  # 1 in use + 1 asked = the quota
    # The import finishes: its operation is done, its image written.
    Operation.objects.update(state=Operation.State.SUCCEEDED)
    Image.objects.create(host=host, team=teams["alpha"], image_id="sha256:" + "c" * 64, size=10)
    refused = _import(api, 100)
    assert refused.status_code == 403, refused.content
    msg = refused.json()["error"]["message"]
    assert "images: team tp-alpha's quota is 2, 2 in use, this asks 1 more" in msg
    event = AuditEvent.objects.filter(action="image.import", outcome="denied").latest("seq")
    assert "images" in event.reason
    assert Operation.objects.filter(kind="image.import").count() == 1
    assert len(list(uploads.iterdir())) == 1  # the refused upload's file is gone


def test_image_bytes_quota_and_usage(api, host, teams, uploads):
    Image.objects.create(host=host, team=teams["alpha"], image_id="sha256:" + "a" * 64, size=600)
    _quotas(api, teams["alpha"], {"image_bytes": 1000})
    assert _import(api, 400).status_code == 202  # 600 + 400: at the quota
    refused = _import(api, 401)
    assert refused.status_code == 403
    assert (
        "image_bytes: team tp-alpha's quota is 1000, 600 in use, this asks 401 more"
        in (refused.json()["error"]["message"])
    )
    usage = api("developer").get(f"/api/v1/teams/{teams['alpha'].pk}/usage/").json()
    assert usage["usage"]["images"] == 1 and usage["usage"]["image_bytes"] == 600
    assert usage["quotas"] == {"image_bytes": 1000}
