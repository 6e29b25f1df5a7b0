"""Archives written by another tool (skopeo) import, and ours are readable by it."""

import shutil
import subprocess

import pytest

from runtime.images.busybox import build_image

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not shutil.which("skopeo"), reason="skopeo (Debian package) not installed"),
]


def skopeo_copy(source: str, dest: str, *flags: str) -> None:
    """Convert an image archive locally (no registry, no network)."""
    subprocess.run(
        ["skopeo", "copy", "--quiet", *flags, source, dest],
        check=True,
        capture_output=True,
        timeout=120,
    )


def test_skopeo_reads_our_save_and_we_read_its_archives(store, tmp_path):
    busybox = build_image(store)
    saved = tmp_path / "ours.tar"
    store.export_docker_archive("busybox", saved)

    skopeo_copy(
        f"docker-archive:{saved}", f"oci-archive:{tmp_path / 'oci.tar'}:sk/oci:1", "--dest-compress"
    )
    skopeo_copy(f"docker-archive:{saved}", f"docker-archive:{tmp_path / 'docker.tar'}:sk/docker:1")

    oci = store.import_archive(tmp_path / "oci.tar")
    docker = store.import_archive(tmp_path / "docker.tar")
    assert oci.repo_tags == ["sk/oci:1"]
    # docker-archive to docker-archive keeps our config: the same image gains a tag.
    assert docker.id == busybox.id and docker.repo_tags == ["busybox:latest", "sk/docker:1"]
    # The OCI copy has a rewritten config, but the same one layer (diff id).
    assert oci.layers == docker.layers == busybox.layers
    assert oci.manifest["layers"][0]["mediaType"].endswith("tar+gzip")
    assert store.layer_dirs(oci) == store.layer_dirs(busybox)
    assert oci.config["config"]["Cmd"] == ["sh"]


def test_oci_save_round_trips_and_skopeo_reads_it(store, tmp_path, config):
    from runtime.images import ImageStore

    busybox = build_image(store)
    saved = tmp_path / "ours-oci.tar"
    store.export_oci_archive("busybox", saved)

    # skopeo finds the image by the bare tag in the OCI ref-name annotation.
    skopeo_copy(f"oci-archive:{saved}:latest", f"docker-archive:{tmp_path / 'back.tar'}:sk/b:1")
    assert store.import_archive(tmp_path / "back.tar").layers == busybox.layers

    # A fresh store loads our OCI archive back as the same image, with its full name.
    other = ImageStore(type(config)(root=tmp_path / "other", run_root=tmp_path / "other-run"))
    loaded = other.import_archive(saved)
    assert loaded.id == busybox.id and loaded.digest == busybox.digest
    assert loaded.repo_tags == ["busybox:latest"]
