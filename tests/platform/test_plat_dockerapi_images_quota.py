"""Team image quotas on the Docker API (dockerapi/images_quota.py) and the merge of several
`docker save` archives into one (images_archive.merge_archives), without an agent."""

import io
import json
import tarfile

import pytest
from django.http import JsonResponse
from django.test import Client
from dockerapi import images_common, images_pull
from dockerapi.images_archive import merge_archives

from accounts.models import ApiToken
from audit.models import AuditEvent
from images.models import Image
from operations.models import Operation

pytestmark = pytest.mark.django_db
V = "/v1.47"


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch, broker):
    """No agent: a pull answers with its queued Operation instead of following it."""
    monkeypatch.setattr(images_common, "WAIT_SECONDS", 0)
    monkeypatch.setattr(
        images_pull, "follow", lambda op, _render, **_o: JsonResponse({"operation": op.pk})
    )


@pytest.fixture
def developer(users):
    _, secret = ApiToken.issue(users["developer"], "docker-quota")
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_USER_AGENT="Docker-Client/28")


def _tar(files: dict) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_quota_counts_only_new_tags_and_refuses_in_dockers_format(developer, teams, host, api):
    team = teams["alpha"]
    Image.objects.create(host=host, team=team, image_id="sha256:" + "c" * 64, repo_tags=["app:1"])
    response = api("admin").put(
        f"/api/v1/teams/{team.pk}/quotas/", {"quotas": {"images": 1}}, format="json"
    )
    assert response.status_code == 200
    # Pulling a tag the team's image already has adds no image: allowed at the quota.
    again = developer.post(V + "/images/create?fromImage=app&tag=1")
    assert again.status_code == 200, again.content
    assert Operation.objects.get(pk=again.json()["operation"]).kind == "image.pull"
    refused = developer.post(V + "/images/create?fromImage=app&tag=2")
    assert refused.status_code == 403
    message = refused.json()["message"]
    assert f"images: team {team.name}'s quota is 1, 1 in use, this asks 1 more" in message
    event = AuditEvent.objects.filter(action="image.pull", outcome="denied").latest("seq")
    assert "images" in event.reason and Operation.objects.count() == 1
    # An import counts its bytes too.
    api("admin").put(
        f"/api/v1/teams/{team.pk}/quotas/", {"quotas": {"image_bytes": 100}}, format="json"
    )
    body = _tar({"big.bin": b"x" * 2048})
    imported = developer.post(
        V + "/images/create?fromSrc=-&repo=app&tag=3", body, content_type="application/x-tar"
    )
    assert imported.status_code == 403
    assert f"image_bytes: team {team.name}'s quota is 100, 0 in use" in imported.json()["message"]
    assert Operation.objects.count() == 1


def test_merged_archive_holds_each_entry_once_and_every_image(tmp_path):
    shared = b"layer shared"
    first = tmp_path / "a.tar"
    first.write_bytes(
        _tar(
            {
                "aaa.json": b"{}",
                "l1/layer.tar": shared,
                "manifest.json": json.dumps(
                    [{"Config": "aaa.json", "RepoTags": ["a:1"], "Layers": ["l1/layer.tar"]}]
                ).encode(),
            }
        )
    )
    second = tmp_path / "b.tar"
    second.write_bytes(
        _tar(
            {
                "bbb.json": b"{}",
                "l1/layer.tar": shared,
                "l2/layer.tar": b"own",
                "manifest.json": json.dumps(
                    [
                        {
                            "Config": "bbb.json",
                            "RepoTags": ["b:1"],
                            "Layers": ["l1/layer.tar", "l2/layer.tar"],
                        },
                        {"Config": "aaa.json", "RepoTags": ["a:2"], "Layers": ["l1/layer.tar"]},
                    ]
                ).encode(),
            }
        )
    )
    merged = tmp_path / "m.tar"
    merge_archives([first, second], merged)
    with tarfile.open(merged) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
        assert tar.extractfile("l2/layer.tar").read() == b"own"
    assert sorted(names) == sorted(
        ["aaa.json", "l1/layer.tar", "bbb.json", "l2/layer.tar", "manifest.json"]
    )
    assert [(e["Config"], e["RepoTags"]) for e in manifest] == [
        ("aaa.json", ["a:1", "a:2"]),
        ("bbb.json", ["b:1"]),
    ]
