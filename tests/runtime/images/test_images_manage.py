"""Tag, resolve, remove, inspect and export images in a real store."""

import pytest
from image_archives import docker_archive, layer, oci_archive, sha, store_contents

from runtime.errors import Conflict, InvalidSpec, NotFound

pytestmark = pytest.mark.root

BASE = [("etc/", None), ("etc/os-release", b"base\n")]


@pytest.fixture
def two_images(store, tmp_path):
    """base:1 (one layer) and app:1 (the same layer plus one)."""
    base, top = layer(BASE), layer([("app", b"app\n")])
    archive = tmp_path / "two.tar"
    docker_archive(archive, [([base], ["base:1"], {}), ([base, top], ["app:1"], {"Cmd": ["app"]})])
    images = store.load_archive(archive)
    return {"base": images[0], "app": images[1], "layers": (sha(base), sha(top))}


def test_tag_resolve_and_untag(store, two_images):
    app = two_images["app"]
    store.tag("app:1", "app:latest")
    store.tag(app.id, "registry.local:5000/team/app:v2")

    assert store.resolve("app").id == app.id
    assert store.resolve("registry.local:5000/team/app:v2").id == app.id
    assert set(store.resolve("app:1").repo_tags) == {
        "app:1",
        "app:latest",
        "registry.local:5000/team/app:v2",
    }
    with pytest.raises(NotFound, match="no such image: nope"):
        store.resolve("nope")
    with pytest.raises(NotFound):
        store.resolve(app.id.split(":")[1][:11])  # prefixes need 12 digits
    with pytest.raises(InvalidSpec):
        store.tag("app:1", "Bad Name")

    # Another tag remains: removing this one only untags.
    assert store.remove("app:latest") == ["Untagged: app:latest"]
    assert store.resolve("app:1").id == app.id
    # By id with several tags: Docker refuses without force.
    with pytest.raises(Conflict, match="several tags"):
        store.remove(app.id)


def test_moving_a_tag_leaves_the_old_image_untagged(store, two_images):
    store.tag("app:1", "base:1")
    base = store.resolve(two_images["base"].id)
    assert base.repo_tags == []
    assert store.resolve("base:1").id == two_images["app"].id
    assert len(store.list()) == 2


def test_prune_removes_dangling_images_not_in_use(store, two_images):
    store.tag("app:1", "base:1")  # base's image is now untagged
    assert store.prune(in_use=[two_images["base"].id]) == []
    assert store.prune() == [f"Deleted: {two_images['base'].id}"]
    assert [image.id for image in store.list()] == [two_images["app"].id]
    assert len(store_contents(store)["layers"]) == 2  # app still stacks both layers


def test_remove_conflicts_with_users_unless_forced(store, two_images):
    app = two_images["app"]
    with pytest.raises(Conflict, match="in use by container.*c0ffee"):
        store.remove("app:1", users=["c0ffee"])
    assert store.resolve("app:1").id == app.id

    # Forced while in use: untagged, but its layers stay for the running container.
    assert store.remove("app:1", force=True, users=["c0ffee"]) == ["Untagged: app:1"]
    assert store.resolve(app.id).repo_tags == []
    assert all(path.is_dir() for path in store.layer_dirs(store.resolve(app.id)))


def test_removing_the_last_ref_deletes_unshared_content(store, two_images):
    base_layer, top_layer = (d.split(":")[1] for d in two_images["layers"])
    app = two_images["app"]

    assert store.remove("app:1") == ["Untagged: app:1", f"Deleted: {app.id}"]

    contents = store_contents(store)
    assert contents["layers"] == [base_layer]  # still used by base:1
    assert top_layer not in contents["blobs"] and app.id.split(":")[1] not in contents["blobs"]
    with pytest.raises(NotFound):
        store.resolve(app.id)
    store.remove("base:1")
    assert store_contents(store) == {"blobs": [], "layers": [], "tmp": [], "index": []}


def test_inspect_looks_like_docker(store, two_images):
    info = store.inspect("app:1")
    assert info["Id"] == two_images["app"].id
    assert info["RepoTags"] == ["app:1"]
    assert info["Config"]["Cmd"] == ["app"]
    assert info["RootFS"] == {"Type": "layers", "Layers": list(two_images["layers"])}
    assert info["Os"] == "linux" and info["Architecture"]
    assert info["Created"] == "2024-01-02T03:04:05Z"
    assert info["Size"] == len(b"base\n") + len(b"app\n")


def test_export_then_import_round_trip(store, two_images, tmp_path, config):
    out = tmp_path / "saved.tar"
    store.export_docker_archive(["app:1", "base:1"], out)
    store.remove("app:1")
    store.remove("base:1")

    images = store.load_archive(out)

    assert [(i.id, i.repo_tags, i.layers) for i in images] == [
        (two_images["app"].id, ["app:1"], two_images["app"].layers),
        (two_images["base"].id, ["base:1"], two_images["base"].layers),
    ]
    assert (store.layer_dirs(images[0])[1] / "app").read_bytes() == b"app\n"


def test_export_of_gzip_layers_round_trips_with_the_same_id(store, tmp_path, config):
    from runtime.images import ImageStore

    archive, out = tmp_path / "oci.tar", tmp_path / "saved.tar"
    config_digest = oci_archive(archive, [layer(BASE)], ref="zipped:1")
    store.import_archive(archive)
    store.export_docker_archive("zipped:1", out)

    other = ImageStore(type(config)(root=tmp_path / "other", prefix="timg"))
    image = other.import_archive(out)
    assert image.id == config_digest and image.repo_tags == ["zipped:1"]
    # docker save carries layers uncompressed: the stored blob is the diff.
    assert image.manifest["layers"][0]["digest"] == image.layers[0]
