"""Pull and build name a host that must be able to do the work: a down, removed or not-joined
host is refused up front (409, audited as failed, nothing queued); a cordoned one still pulls."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from hosts.models import HEARTBEAT_GRACE, Host
from operations.models import Operation
from tests.registries.test_reg_api import _context_tar

PULL = {"ref": "registry.example.com:5000/tr/app:1", "team": "tr-alpha"}


def _silence(host):
    stale = timezone.now() - HEARTBEAT_GRACE - timedelta(seconds=5)
    Host.objects.filter(pk=host.pk).update(last_heartbeat=stale)


def _remove(host):
    Host.objects.filter(pk=host.pk).update(revoked_at=timezone.now())


@pytest.mark.parametrize("make_unusable", [_silence, _remove], ids=["down", "removed"])
def test_pull_and_build_on_an_unusable_host_are_409_with_nothing_left(
    api, host, settings, tmp_path, make_unusable
):
    settings.UPLOAD_DIR = tmp_path / "uploads"
    make_unusable(host)
    pull = api("developer").post("/api/v1/images/pull/", PULL, format="json")
    assert pull.status_code == 409, pull.content
    assert pull.json()["error"]["code"] == "host_unavailable"
    assert host.name in pull.json()["error"]["message"]
    build = api("developer").post(
        "/api/v1/images/build/",
        {"context": _context_tar(), "tag": "tr/b:1", "team": "tr-alpha"},
        format="multipart",
    )
    assert build.status_code == 409, build.content
    assert not Operation.objects.exists()
    # The uploaded context is not kept for a build that will never run.
    assert not any((tmp_path / "uploads").glob("*"))
    failed = AuditEvent.objects.filter(outcome="failed", action__in=["image.pull", "image.build"])
    assert failed.count() == 2


def test_a_cordoned_host_still_pulls(api, host):
    Host.objects.filter(pk=host.pk).update(cordoned=True)
    response = api("developer").post("/api/v1/images/pull/", PULL, format="json")
    assert response.status_code == 202, response.content
    assert Operation.objects.get().kind == "image.pull"
