"""Images, volumes and networks through the REST API and the agent, on the real runtime."""

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.root]


def test_base_image_is_a_shared_row_after_reconciliation(web):
    # scripts/berth-up builds busybox into the store outside any operation; the agent's
    # reconciliation gives it a row that every user who may view images sees (team NULL).
    busybox = web.runtime().images.resolve("busybox")
    rows = web.wait_until(
        lambda: web.sql(
            "SELECT team_id, repo_tags FROM images_image WHERE image_id = ?", busybox.id
        ),
        30,
        "the agent to record the base image",
    )
    assert rows[0][0] is None and "busybox:latest" in rows[0][1]
    status, body = web.api("GET", "images/")
    assert status == 200
    assert busybox.id in {image["image_id"] for image in body["results"]}


def test_image_import_tag_remove(web, tmp_path):
    from runtime.images.busybox import build_rootfs_tar

    # A plain rootfs tar: imported as an image of its own, not the busybox base image.
    archive = tmp_path / "rootfs.tar"
    build_rootfs_tar(str(archive))
    status, body = web.upload(
        "images/import/?wait=60", {"host": web.host, "ref": "e2e/bb:1"}, archive
    )
    assert status == 200 and body["operation"]["state"] == "succeeded", body
    image_id = body["operation"]["result"]["image_id"]
    rows = web.sql("SELECT id, repo_tags FROM images_image WHERE image_id = ?", image_id)
    assert len(rows) == 1 and "e2e/bb:1" in rows[0][1]
    pk = rows[0][0]
    assert web.runtime().images.resolve("e2e/bb:1").id == image_id
    assert list((web.data_dir / "uploads").glob("*")) == []  # the upload is gone once imported

    status, body = web.api("POST", f"images/{pk}/tag/?wait=60", {"tag": "e2e/bb:2"})
    assert status == 200 and body["operation"]["state"] == "succeeded", body
    assert "e2e/bb:2" in web.sql("SELECT repo_tags FROM images_image WHERE id = ?", pk)[0][0]

    status, body = web.api("DELETE", f"images/{pk}/?wait=60&force=1")
    assert status == 200 and body["operation"]["state"] == "succeeded", body
    assert web.sql("SELECT count(*) FROM images_image WHERE id = ?", pk) == [(0,)]
    assert all(i.id != image_id for i in web.runtime().images.list())
    assert web.runtime().images.resolve("busybox").id != image_id  # the base image stays


def test_volume_holds_data_and_goes_away(web):
    status, body = web.api(
        "POST", "volumes/?wait=60", {"team": web.team, "host": web.host, "name": "vol1"}
    )
    assert status == 200 and body["operation"]["state"] == "succeeded", body
    vid = body["volume"]["id"]
    data = web.root / "volumes" / "vol1" / "_data"
    assert data.is_dir()

    spec = {
        "image": "busybox",
        "name": "writer",
        "command": ["sh", "-c", "echo kept > /data/file"],
        "mounts": [{"type": "volume", "source": "vol1", "target": "/data"}],
        "network": {"mode": "none"},
    }
    status, body = web.api(
        "POST", "containers/?wait=60", {"team": web.team, "host": web.host, "spec": spec}
    )
    assert status == 200 and body["operation"]["state"] == "succeeded", body
    cid = body["container"]["id"]
    web.wait_until(lambda: (data / "file").exists(), 15, "the container's write into the volume")
    assert (data / "file").read_text() == "kept\n"

    status, body = web.api("DELETE", f"volumes/{vid}/?wait=60")
    assert body["operation"]["state"] == "failed" and "in use" in body["operation"]["error"], body
    web.api("DELETE", f"containers/{cid}/?wait=60&force=true", expect=200)
    status, body = web.api("DELETE", f"volumes/{vid}/?wait=60")
    assert status == 200 and body["operation"]["state"] == "succeeded", body
    assert not data.exists()
    # The name is free again.
    status, body = web.api(
        "POST", "volumes/?wait=60", {"team": web.team, "host": web.host, "name": "vol1"}
    )
    assert status == 200 and body["operation"]["state"] == "succeeded", body
    web.api("DELETE", f"volumes/{body['volume']['id']}/?wait=60", expect=200)


def test_network_create_remove(web):
    status, body = web.api(
        "POST", "networks/?wait=60", {"team": web.team, "host": web.host, "name": "net1"}
    )
    assert status == 200 and body["operation"]["state"] == "succeeded", body
    nid = body["network"]["id"]
    info = web.runtime().networks.inspect("net1")
    assert info["subnet"]
    assert web.sql("SELECT state, subnet FROM networks_network WHERE id = ?", nid) == [
        ("ready", info["subnet"])
    ]

    status, body = web.api("DELETE", f"networks/{nid}/?wait=60")
    assert status == 200 and body["operation"]["state"] == "succeeded", body
    assert all(n["name"] != "net1" for n in web.runtime().networks.list())
    assert web.sql("SELECT count(*) FROM networks_network WHERE id = ?", nid) == [(0,)]
