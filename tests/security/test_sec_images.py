"""Image names are shared on a host: no team may run another's private image or take its tags."""

import io

import pytest

from audit.models import AuditEvent
from containers.models import Container
from images.models import Image
from operations.models import Operation

pytestmark = pytest.mark.django_db


@pytest.fixture
def images(host, teams):
    """The shared busybox and a private image of beta."""
    return {
        "shared": Image.objects.create(
            host=host, team=None, image_id="sha256:" + "a" * 64, repo_tags=["busybox:latest"]
        ),
        "beta": Image.objects.create(
            host=host,
            team=teams["beta"],
            image_id="sha256:" + "b" * 64,
            repo_tags=["beta/secret:1"],
        ),
        "alpha": Image.objects.create(
            host=host, team=teams["alpha"], image_id="sha256:" + "c" * 64, repo_tags=["alpha/app:1"]
        ),
    }


def _create(client, host, image):
    body = {"team": "ts-alpha", "host": host.name, "spec": {"image": image}}
    return client.post("/api/v1/containers/", body, format="json")


@pytest.mark.parametrize("ref", ["beta/secret:1", "sha256:" + "b" * 64, "b" * 12])
def test_another_teams_private_image_cannot_be_run(api, host, images, ref):
    response = _create(api("developer"), host, ref)
    assert response.status_code == 403, response.content
    assert "another team" in response.json()["error"]["message"]
    assert not Container.objects.exists()


def test_shared_and_own_images_can_be_run(api, host, images):
    for ref in ("busybox", "docker.io/library/busybox:latest", "alpha/app:1"):
        assert _create(api("developer"), host, ref).status_code == 202, ref
        Container.objects.all().delete()


def test_the_dashboard_form_refuses_another_teams_image(page, host, teams, images):
    body = {"image": "beta/secret:1", "team": teams["alpha"].pk, "host": host.pk}
    response = page("developer").post("/containers/new/", body | {"restart": "no"})
    assert response.status_code == 403
    assert not Container.objects.exists()


def _tar():
    buf = io.BytesIO(b"\0" * 1024)
    buf.name = "x.tar"
    return buf


@pytest.mark.parametrize("taken", ["busybox", "busybox:latest", "beta/secret:1"])
def test_a_team_cannot_take_a_shared_or_foreign_tag(api, host, teams, images, taken):
    dev = api("developer")
    alpha = str(teams["alpha"].pk)
    attempts = {
        "tag": dev.post(f"/api/v1/images/{images['alpha'].pk}/tag/", {"tag": taken}, format="json"),
        "pull": dev.post(
            "/api/v1/images/pull/",
            {"ref": taken, "host": host.name, "team": alpha},
            format="json",
        ),
        "build": dev.post(
            "/api/v1/images/build/",
            {"context": _tar(), "tag": taken, "host": host.name, "team": alpha},
            format="multipart",
        ),
        "import": dev.post(
            "/api/v1/images/import/",
            {"file": _tar(), "ref": taken, "host": host.name, "team": alpha},
            format="multipart",
        ),
    }
    for door, response in attempts.items():
        assert response.status_code == 403, (door, response.content)
        assert "you may not move it" in response.json()["error"]["message"], door
    assert not Operation.objects.exists()
    assert AuditEvent.objects.filter(outcome="denied", reason__contains="may not move").count() == 4


def test_commit_cannot_take_a_shared_tag(api, host, teams, images):
    from tests.platform.factories import make_container

    container = make_container(teams["alpha"], host, "ts-c")
    body = {"container": str(container.pk), "ref": "busybox:latest"}
    response = api("developer").post("/api/v1/images/commit/", body, format="json")
    assert response.status_code == 403, response.content
    assert not Operation.objects.exists()


def test_dashboard_tag_and_import_cannot_take_a_shared_tag(page, host, teams, images):
    client = page("developer")
    response = client.post(f"/images/{images['alpha'].pk}/tag/", {"ref": "busybox"})
    assert response.status_code == 403
    body = {"archive": _tar(), "ref": "busybox", "host": host.pk, "team": teams["alpha"].pk}
    assert client.post("/images/import/", body).status_code == 403
    assert not Operation.objects.exists()


def test_own_tags_and_new_names_are_free(api, host, teams, images):
    dev = api("developer")
    url = f"/api/v1/images/{images['alpha'].pk}/tag/"
    assert dev.post(url, {"tag": "alpha/app:2"}, format="json").status_code == 202
    body = {"ref": "alpha/app:1", "host": host.name, "team": str(teams["alpha"].pk)}
    assert dev.post("/api/v1/images/pull/", body, format="json").status_code == 202


def test_admin_may_move_a_shared_tag(api, host, images):
    url = f"/api/v1/images/{images['alpha'].pk}/tag/"
    assert api("admin").post(url, {"tag": "busybox"}, format="json").status_code == 202


def test_the_agent_refuses_a_stored_spec_naming_another_teams_image(teams, host, images, users):
    """Defense in depth: a row written past the web (or before the image changed hands)."""
    from agent.policy_gate import checked_spec

    from runtime.errors import InvalidSpec
    from tests.platform.factories import make_container

    row = make_container(teams["alpha"], host, "ts-sneaky", created_by=users["developer"])
    # As the web stores it: the developer role's default limits filled in.
    limits = {"memory": 268435456, "cpu_quota": 100000, "cpu_period": 100000, "pids": 512}
    row.spec = row.spec | {"image": "beta/secret:1", "limits": limits}
    with pytest.raises(InvalidSpec, match="another team"):
        checked_spec(row)
    row.spec = row.spec | {"image": "busybox"}
    assert checked_spec(row).image == "busybox"
