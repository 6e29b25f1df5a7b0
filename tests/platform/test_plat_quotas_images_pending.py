"""Team image quotas on the REST API's and the dashboard's pulls and builds
(images/quota_check.py): at the limit allowed, one over refused with the quota's message,
audited and nothing queued; unfinished pulls and builds of the team count as images in use."""

import io
import tarfile

import pytest
from django.test import Client

from audit.models import AuditEvent
from images.models import Image
from operations.models import Operation

pytestmark = pytest.mark.django_db


@pytest.fixture
def limited(api, teams, host, broker, settings, tmp_path):
    """Team tp-alpha may own 2 images and already owns one (tagged tp/held:1)."""
    settings.UPLOAD_DIR = tmp_path / "uploads"
    team = teams["alpha"]
    Image.objects.create(
        host=host, team=team, image_id="sha256:" + "a" * 64, repo_tags=["tp/held:1"]
    )
    response = api("admin").put(
        f"/api/v1/teams/{team.pk}/quotas/", {"quotas": {"images": 2}}, format="json"
    )
    assert response.status_code == 200, response.content
    return team


def _pull(api, ref):
    body = {"ref": ref, "host": "tp-h1", "team": "tp-alpha"}
    return api("developer").post("/api/v1/images/pull/", body, format="json")


def _build(api, tag):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        data = b"FROM scratch\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    context = io.BytesIO(out.getvalue())
    context.name = "context.tar"
    body = {"context": context, "tag": tag, "host": "tp-h1", "team": "tp-alpha"}
    return api("developer").post("/api/v1/images/build/", body, format="multipart")


def _refused(response, action, message):
    assert response.status_code == 403, response.content
    assert message in response.json()["error"]["message"]
    event = AuditEvent.objects.filter(action=action, outcome="denied").latest("seq")
    assert "images: team tp-alpha's quota is 2" in event.reason


def test_rest_pull_counts_pending_pulls(api, limited, host):
    assert _pull(api, "tp/new:1").status_code == 202  # 1 held + 1 asked: at the quota
    queued = Operation.objects.count()
    # The first pull has written no image yet: it is in use all the same.
    _refused(
        _pull(api, "tp/other:1"),
        "image.pull",
        "images: team tp-alpha's quota is 2, 2 in use (1 of them pending), this asks 1 more",
    )
    assert Operation.objects.count() == queued  # nothing queued
    # A tag already held, or one a pending pull will write, adds no image.
    assert _pull(api, "tp/held:1").status_code == 202
    assert _pull(api, "tp/new:1").status_code == 202
    # Once the pulls have finished (their image written), only the images count.
    Operation.objects.update(state=Operation.State.SUCCEEDED)
    Image.objects.create(
        host=host,
        team=limited,
        image_id="sha256:" + "b" * 64,
        repo_tags=["tp/new:1"],
    )
    _refused(
        _pull(api, "tp/other:1"),
        "image.pull",
        "images: team tp-alpha's quota is 2, 2 in use, this asks 1 more",
    )


def test_rest_build_at_and_over_the_quota(api, limited, settings):
    assert _build(api, "tp/built:1").status_code == 202
    _refused(
        _build(api, "tp/built:2"),
        "image.build",
        "images: team tp-alpha's quota is 2, 2 in use (1 of them pending), this asks 1 more",
    )
    assert Operation.objects.filter(kind="image.build").count() == 1
    # The refused build's context was not kept.
    assert len(list(settings.UPLOAD_DIR.iterdir())) == 1


def test_pending_build_counts_against_a_pull(api, limited):
    assert _build(api, "tp/built:1").status_code == 202
    _refused(
        _pull(api, "tp/other:1"),
        "image.pull",
        "images: team tp-alpha's quota is 2, 2 in use (1 of them pending), this asks 1 more",
    )


def test_dashboard_pull_refused_over_the_quota(api, limited, users, host):
    assert _pull(api, "tp/new:1").status_code == 202
    client = Client()
    client.force_login(users["developer"])
    body = {"ref": "tp/other:1", "host": host.pk, "team": limited.pk}
    response = client.post("/images/pull/", body)
    assert response.status_code == 403
    assert b"quota is 2, 2 in use" in response.content
    event = AuditEvent.objects.filter(action="image.pull", outcome="denied").latest("seq")
    assert event.summary.get("via") == "dashboard"
    assert Operation.objects.filter(kind="image.pull").count() == 1


def test_dashboard_import_counts_pending_work(api, limited, users, host, settings):
    assert _pull(api, "tp/new:1").status_code == 202
    client = Client()
    client.force_login(users["developer"])
    upload = io.BytesIO(b"x" * 10)
    upload.name = "img.tar"
    body = {"archive": upload, "ref": "tp/imported:1", "host": host.pk, "team": limited.pk}
    response = client.post("/images/import/", body)
    assert response.status_code == 403
    assert b"quota is 2, 2 in use" in response.content
    assert not Operation.objects.filter(kind="image.import").exists()
    assert not list(settings.UPLOAD_DIR.iterdir())  # the refused upload is not kept
