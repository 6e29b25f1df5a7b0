"""Importing docker-save, OCI layout and rootfs tarballs into a real store on disk."""

import gzip
import os
import stat
import tarfile
import threading

import pytest
from image_archives import (
    assert_empty,
    config_for,
    docker_archive,
    layer,
    oci_archive,
    sha,
    store_contents,
)

from runtime.errors import ImageError, InvalidSpec

pytestmark = pytest.mark.root  # unpacking keeps owners and makes device nodes: needs root

BASE = [("etc/", None), ("etc/hostname", b"base\n"), ("bin/", None), ("bin/tool", b"#!/bin/sh\n")]
TOP = [("etc/motd", b"hello\n")]


def test_docker_save_legacy_layout(store, tmp_path):
    base, top = layer(BASE), layer(TOP)
    archive = tmp_path / "img.tar"
    (image_id,) = docker_archive(
        archive, [([base, top], ["demo:1"], {"Cmd": ["sh"], "Env": ["A=1"]})]
    )

    image = store.import_archive(archive)

    assert image.id == image_id
    assert image.repo_tags == ["demo:1"]
    assert image.layers == [sha(base), sha(top)]
    assert image.config["config"]["Cmd"] == ["sh"]
    dirs = store.layer_dirs(image)
    assert (dirs[0] / "etc/hostname").read_bytes() == b"base\n"
    assert (dirs[1] / "etc/motd").read_bytes() == b"hello\n"
    assert store.resolve("demo:1").id == image_id
    assert store.resolve(image_id).id == image_id
    assert store.resolve(image_id.split(":")[1][:12]).id == image_id
    assert stat.S_IMODE(os.stat(store.layout.root).st_mode) == 0o700  # setuid files inside
    index = store_contents(store)["index"]
    assert [d["annotations"]["org.opencontainers.image.ref.name"] for d in index] == ["demo:1"]
    assert (store.layout.root / "oci-layout").exists()


def test_docker_save_new_layout_gzipped(store, tmp_path):
    base = layer(BASE)
    archive = tmp_path / "img.tar.gz"
    (image_id,) = docker_archive(
        archive, [([base], ["docker.io/library/new:2"], {})], new_layout=True, compress=True
    )

    image = store.import_archive(archive)

    assert image.id == image_id
    assert image.repo_tags == ["new:2"]
    assert (store.layer_dirs(image)[0] / "bin/tool").read_bytes() == b"#!/bin/sh\n"
    assert store_contents(store)["tmp"] == []


def test_oci_layout_with_gzip_layers(store, tmp_path):
    base, top = layer(BASE), layer(TOP)
    archive = tmp_path / "oci.tar"
    config_digest = oci_archive(archive, [base, top], ref="registry.local:5000/team/app:v3")

    image = store.import_archive(archive)

    assert image.id == config_digest
    assert image.repo_tags == ["registry.local:5000/team/app:v3"]
    assert image.layers == [sha(base), sha(top)]
    # Layers are kept as imported (gzip) and unpacked once.
    for descriptor in image.manifest["layers"]:
        assert descriptor["mediaType"].endswith("+gzip")
        assert store.layout.blob_path(descriptor["digest"]).read_bytes() == _blob_in_archive(
            archive, descriptor
        )
    assert (store.layer_dirs(image)[1] / "etc/motd").read_bytes() == b"hello\n"


def _blob_in_archive(archive, descriptor):
    """The bytes an OCI archive holds for a descriptor."""
    with tarfile.open(archive) as tar:
        return tar.extractfile("blobs/sha256/" + descriptor["digest"].split(":")[1]).read()


def test_oci_image_index_picks_this_platform(store, tmp_path):
    archive = tmp_path / "oci.tar"
    config_digest = oci_archive(archive, [layer(BASE)], nested=True)

    image = store.import_archive(archive, ref="multi")

    assert image.id == config_digest
    assert image.repo_tags == ["multi:latest"]


def test_rootfs_tarball_with_changes(store, tmp_path):
    archive = tmp_path / "rootfs.tar.gz"
    archive.write_bytes(gzip.compress(layer(BASE)))

    image = store.import_archive(
        archive,
        ref="rootfs:x",
        changes=['CMD ["/bin/tool", "-v"]', "ENV A=1 B='two words'", "WORKDIR /srv", "USER nobody",
                 "EXPOSE 80 53/udp", 'LABEL team=core "note=a b"', "ENTRYPOINT /bin/tool"],
    )  # fmt: skip

    inner = image.config["config"]
    assert inner["Cmd"] == ["/bin/tool", "-v"]
    assert inner["Entrypoint"] == ["/bin/sh", "-c", "/bin/tool"]
    assert inner["Env"] == ["A=1", "B=two words"]
    assert inner["WorkingDir"] == "/srv"
    assert inner["User"] == "nobody"
    assert inner["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert inner["Labels"] == {"team": "core", "note": "a b"}
    assert image.layers == [sha(layer(BASE))]
    assert (store.layer_dirs(image)[0] / "etc/hostname").read_bytes() == b"base\n"
    assert store.inspect("rootfs:x")["Config"]["Cmd"] == ["/bin/tool", "-v"]


def test_rootfs_needs_a_reference_and_valid_changes(store, tmp_path):
    archive = tmp_path / "rootfs.tar"
    archive.write_bytes(layer(BASE))
    with pytest.raises(InvalidSpec, match="reference"):
        store.import_archive(archive)
    with pytest.raises(InvalidSpec, match="RUN is not supported"):
        store.import_archive(archive, ref="x", changes=["RUN rm -rf /"])
    with pytest.raises(InvalidSpec, match="invalid"):
        store.import_archive(archive, ref="Upper/Case")
    assert_empty(store)


def test_diff_id_mismatch_is_refused_and_nothing_stays(store, tmp_path):
    good, other = layer(BASE), layer(TOP)
    archive = tmp_path / "bad.tar"
    # The config claims the diff id of `other`, the archive carries `good`.
    docker_archive(archive, [([good], ["bad:1"], {})], config_bytes=config_for([other]))

    with pytest.raises(
        ImageError, match=rf"layer {sha(good).split(':')[1]}/layer.tar: diff id mismatch"
    ):
        store.import_archive(archive)
    assert_empty(store)


def test_oci_blob_digest_mismatch_is_refused(store, tmp_path):
    archive = tmp_path / "bad.tar"
    oci_archive(archive, [layer(BASE)], ref="x/y:1", tamper_layer=True)
    with pytest.raises(ImageError, match="layer blobs/sha256/[0-9a-f]{64}"):
        store.import_archive(archive)
    assert_empty(store)


def test_config_digest_mismatch_is_refused(store, tmp_path):
    archive = tmp_path / "bad.tar"
    docker_archive(archive, [([layer(BASE)], ["c:1"], {})])
    data = archive.read_bytes().replace(b'"os": "linux"', b'"os": "LINUX"')
    archive.write_bytes(data)
    with pytest.raises(ImageError, match="config .* digest mismatch"):
        store.import_archive(archive)
    assert_empty(store)


@pytest.mark.parametrize("where", ["layer data", "member boundary", "manifest data"])
def test_truncated_docker_archive_is_refused(store, tmp_path, where):
    archive = tmp_path / "cut.tar"
    docker_archive(archive, [([layer(BASE), layer(TOP)], ["cut:1"], {})])
    with tarfile.open(archive) as tar:
        members = {member.name: member for member in tar.getmembers()}
    first_layer = next(m for name, m in members.items() if name.endswith("layer.tar"))
    cut = {
        "layer data": first_layer.offset_data + first_layer.size // 2,
        "member boundary": members["manifest.json"].offset,
        "manifest data": members["manifest.json"].offset_data + 5,
    }[where]
    archive.write_bytes(archive.read_bytes()[:cut])
    with pytest.raises(ImageError, match="truncated"):
        store.import_archive(archive)
    assert_empty(store)


def test_truncated_rootfs_and_gzip_are_refused(store, tmp_path):
    data = layer(BASE)
    archive = tmp_path / "cut.tar"
    archive.write_bytes(data[:1536])  # ends exactly after a member: no end-of-archive marker
    with pytest.raises(ImageError, match="truncated"):
        store.import_archive(archive, ref="cut")
    compressed = tmp_path / "cut.tar.gz"
    compressed.write_bytes(gzip.compress(data)[:-20])
    with pytest.raises(ImageError):
        store.import_archive(compressed, ref="cut")
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(ImageError):
        store.import_archive(garbage, ref="cut")
    assert_empty(store)


@pytest.mark.parametrize(
    "entries, message",
    [
        ([("../evil", b"x")], r"escapes"),
        ([("/abs", b"x")], r"absolute"),
        ([("etc", ("sym", "/tmp")), ("etc/evil", b"x")], r"not a directory"),
        ([("link", ("sym", "..")), ("link/evil", b"x")], r"not a directory"),
        ([("hl", ("hard", "../../etc/passwd"))], r"escapes"),
        ([("hl", ("hard", "etc/shadow"))], r"not a file earlier"),
    ],
)
def test_members_that_escape_are_refused(store, tmp_path, entries, message):
    archive = tmp_path / "evil.tar"
    archive.write_bytes(layer(entries))
    with pytest.raises(ImageError, match=message):
        store.import_archive(archive, ref="evil")
    assert_empty(store)
    assert not (tmp_path / "evil").exists()


def test_metadata_devices_links_and_xattrs_are_kept(store, tmp_path):
    entries = [
        ("ro/", {"type": b"5", "mode": 0o555, "uid": 7, "gid": 8}),
        ("ro/file", {"data": b"data", "mode": 0o4751, "uid": 1000, "gid": 100}),
        ("ro/hard", ("hard", "ro/file")),
        ("sym", ("sym", "/ro/file")),
        ("dev/", None),
        ("dev/null", ("chr", 1, 3)),
        ("dev/loop9", ("blk", 7, 9)),
        ("attr", {"data": b"x", "mode": 0o600, "pax_headers": {"SCHILY.xattr.user.berth": "yes"}}),
        ("forged", {"data": b"x", "pax_headers": {"SCHILY.xattr.trusted.overlay.opaque": "y"}}),
    ]
    archive = tmp_path / "meta.tar"
    archive.write_bytes(layer(entries))

    root = store.layer_dirs(store.import_archive(archive, ref="meta"))[0]

    st = os.lstat(root / "ro/file")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_nlink) == (0o4751, 1000, 100, 2)
    assert os.lstat(root / "ro/hard").st_ino == st.st_ino
    assert stat.S_IMODE(os.lstat(root / "ro").st_mode) == 0o555
    assert (os.lstat(root / "ro").st_uid, os.lstat(root / "ro").st_gid) == (7, 8)
    assert os.readlink(root / "sym") == "/ro/file"
    null = os.lstat(root / "dev/null")
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    assert stat.S_ISBLK(os.lstat(root / "dev/loop9").st_mode)
    assert os.getxattr(root / "attr", "user.berth") == b"yes"
    assert "trusted.overlay.opaque" not in os.listxattr(root / "forged")
    assert os.lstat(root / "ro/file").st_mtime == 1700000000


def test_shared_layers_are_unpacked_once(store, tmp_path):
    base, top = layer(BASE), layer(TOP)
    first, second = tmp_path / "a.tar", tmp_path / "b.tar"
    docker_archive(first, [([base], ["base:1"], {})])
    docker_archive(second, [([base, top], ["app:1"], {})])

    base_image = store.import_archive(first)
    base_dir = store.layer_dirs(base_image)[0]
    inode = os.stat(base_dir / "etc/hostname").st_ino
    app = store.import_archive(second)

    assert store.layer_dirs(app)[0] == base_dir
    assert os.stat(base_dir / "etc/hostname").st_ino == inode
    assert sorted(store_contents(store)["layers"]) == sorted(
        sha(d).split(":")[1] for d in (base, top)
    )


def test_concurrent_imports_of_one_image(store, tmp_path):
    archive = tmp_path / "img.tar"
    (image_id,) = docker_archive(archive, [([layer(BASE), layer(TOP)], ["race:1"], {})])
    errors, results = [], []

    def run():
        try:
            results.append(store.import_archive(archive).id)
        except Exception as err:  # reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == [] and results == [image_id] * 4
    contents = store_contents(store)
    assert len(contents["layers"]) == 2 and contents["tmp"] == []
    assert [image.id for image in store.list()] == [image_id]


def test_scratch_of_a_dead_import_is_swept(store, tmp_path):
    store.layout.ensure()
    leftover = store.layout.tmp / "4194399-dead"  # above any pid_max: that process is gone
    (leftover / "layer-1").mkdir(parents=True)
    archive = tmp_path / "img.tar"
    docker_archive(archive, [([layer(BASE)], ["sweep:1"], {})])

    store.import_archive(archive)

    assert store_contents(store)["tmp"] == []


def test_one_reference_for_several_images_is_refused(store, tmp_path):
    archive = tmp_path / "two.tar"
    docker_archive(archive, [([layer(BASE)], [], {}), ([layer(TOP)], [], {})])
    with pytest.raises(InvalidSpec, match="holds 2 images"):
        store.import_archive(archive, ref="one")
    assert_empty(store)
    untagged = store.load_archive(archive)
    assert [image.repo_tags for image in untagged] == [[], []]


def test_later_members_replace_earlier_ones(store, tmp_path):
    entries = [
        ("a/", None),
        ("a/inner", b"gone"),
        ("a", b"now a file"),  # a directory replaced by a file
        ("b", b"first"),
        ("b/", {"type": tarfile.DIRTYPE, "mode": 0o500}),  # a file replaced by a read-only dir
        ("b/child", b"written after its read-only parent"),
        ("c", b"old"),
        ("c", b"new"),
        ("d/.wh.x", b""),
        ("d/x/", None),  # deleted then recreated in one layer: an opaque directory
    ]
    archive = tmp_path / "dup.tar"
    archive.write_bytes(layer(entries))

    root = store.layer_dirs(store.import_archive(archive, ref="dup"))[0]

    assert (root / "a").read_bytes() == b"now a file"
    assert stat.S_IMODE(os.stat(root / "b").st_mode) == 0o500
    assert (root / "b/child").read_bytes() == b"written after its read-only parent"
    assert (root / "c").read_bytes() == b"new"
    assert (root / "d/x").is_dir() and os.getxattr(root / "d/x", "trusted.overlay.opaque") == b"y"
