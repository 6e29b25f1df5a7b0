"""Layers with whiteouts and opaque directories, stacked by a real overlayfs mount."""

import os
import stat

import pytest
from image_archives import docker_archive, layer

from runtime import linux
from runtime.images.unpack import OPAQUE_XATTR

pytestmark = pytest.mark.root


@pytest.fixture
def overlay(tmp_path):
    """mount(image_layer_dirs) -> merged path; every mount is undone even if the test fails."""
    mounted = []

    def mount(layer_dirs):
        merged, upper, work = (tmp_path / name for name in ("merged", "upper", "work"))
        for path in (merged, upper, work):
            path.mkdir()
        # overlayfs lists lowerdirs top first; the store hands them out lowest first.
        lower = ":".join(str(path) for path in reversed(layer_dirs))
        linux.mount(
            "overlay",
            str(merged),
            "overlay",
            0,
            f"lowerdir={lower},upperdir={upper},workdir={work}",
        )
        mounted.append(merged)
        return merged

    yield mount
    for path in mounted:
        linux.umount(str(path), linux.MNT_DETACH)


def test_whiteout_hides_a_lower_file(store, tmp_path, overlay):
    base = layer([("etc/", None), ("etc/a", b"a"), ("etc/b", b"b"), ("tmp/", None), ("tmp/gone/", None),
                  ("tmp/gone/x", b"x")])  # fmt: skip
    upper = layer([("etc/.wh.a", b""), ("tmp/.wh.gone", b""), ("etc/c", b"c")])
    archive = tmp_path / "img.tar"
    docker_archive(archive, [([base, upper], ["wh:1"], {})])

    dirs = store.layer_dirs(store.import_archive(archive))

    marker = os.lstat(dirs[1] / "etc/a")
    assert stat.S_ISCHR(marker.st_mode) and marker.st_rdev == os.makedev(0, 0)
    assert not (dirs[1] / "etc/.wh.a").exists()
    merged = overlay(dirs)
    assert sorted(os.listdir(merged / "etc")) == ["b", "c"]
    assert not (merged / "etc/a").exists()
    assert not (merged / "tmp/gone").exists()
    assert (merged / "etc/b").read_bytes() == b"b"


def test_opaque_directory_hides_lower_contents(store, tmp_path, overlay):
    base = layer([("srv/", None), ("srv/old1", b"1"), ("srv/old2", b"2"), ("keep", b"k")])
    upper = layer([("srv/", None), ("srv/.wh..wh..opq", b""), ("srv/new", b"n")])
    archive = tmp_path / "img.tar"
    docker_archive(archive, [([base, upper], ["opq:1"], {})])

    dirs = store.layer_dirs(store.import_archive(archive))

    assert os.getxattr(dirs[1] / "srv", OPAQUE_XATTR) == b"y"
    assert not (dirs[1] / "srv/.wh..wh..opq").exists()
    merged = overlay(dirs)
    assert os.listdir(merged / "srv") == ["new"]
    assert (merged / "keep").read_bytes() == b"k"
