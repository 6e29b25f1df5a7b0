"""Pull and push against a real `docker-registry` on 127.0.0.1, with images from skopeo and Berth."""

import json
import os
import subprocess

import pytest
from registry_helpers import make_oci_layout, needs_registry, skopeo, skopeo_push_layout

from runtime.config import RuntimeConfig
from runtime.images.store import ImageStore
from runtime.registry import (
    DigestMismatch,
    ManifestNotFound,
    PlatformNotFound,
    RegistryClient,
    media,
    pull,
    push,
)
from runtime.registry.search import search

pytestmark = [pytest.mark.root, needs_registry]


@pytest.fixture
def store(tmp_path):
    """An empty image store under a temporary state root."""
    return ImageStore(
        RuntimeConfig(root=tmp_path / "state", run_root=tmp_path / "run", prefix="treg")
    )


def _store_is_clean(store) -> bool:
    layout = store.layout

    def empty(path):
        return not path.exists() or not any(path.iterdir())

    return store.list() == [] and empty(layout.blobs) and empty(layout.layers) and empty(layout.tmp)


def test_pull_by_tag_and_by_digest(registry, store, tmp_path):
    info = make_oci_layout(
        tmp_path / "layout",
        [{"etc/motd": b"pulled by tag\n"}, {"usr/share/a.txt": b"second layer"}],
    )
    skopeo_push_layout(tmp_path / "layout", "latest", f"{registry.host}/pp/tagged:v1")

    events = []
    result = pull(store, f"{registry.host}/pp/tagged:v1", progress=events.append)

    assert result.image.id == info["config_digest"]
    assert result.digest == info["manifest_digest"]
    assert result.image.repo_tags == [f"{registry.host}/pp/tagged:v1"]
    assert sorted(result.downloaded) == sorted(d["digest"] for d in info["layers"])
    lower, upper = store.layer_dirs(result.image)
    assert (lower / "etc/motd").read_bytes() == b"pulled by tag\n"
    assert (upper / "usr/share/a.txt").read_bytes() == b"second layer"
    statuses = {e["status"] for e in events}
    assert {"Downloading", "Download complete", "Pull complete"} <= statuses

    # By digest: same image, nothing downloaded again.
    again = pull(store, f"{registry.host}/pp/tagged@{info['manifest_digest']}")
    assert again.image.id == result.image.id
    assert again.downloaded == []
    assert len(store.list()) == 1


def test_layers_already_present_are_not_downloaded(registry, store, tmp_path):
    base = {"bin/base": b"shared base layer for reuse"}
    make_oci_layout(tmp_path / "a", [base])
    skopeo_push_layout(tmp_path / "a", "latest", f"{registry.host}/pp/base:1")
    info = make_oci_layout(tmp_path / "b", [base, {"app/x": b"only in child"}])
    skopeo_push_layout(tmp_path / "b", "latest", f"{registry.host}/pp/child:1")

    pull(store, f"{registry.host}/pp/base:1")
    child = pull(store, f"{registry.host}/pp/child:1")

    assert child.downloaded == [info["layers"][1]["digest"]]
    assert child.reused == [info["layers"][0]["digest"]]
    assert [d.name for d in store.layer_dirs(child.image)] == [
        d.split(":")[1] for d in info["diff_ids"]
    ]


def test_push_by_berth_then_pull_back_by_digest(registry, store, tmp_path):
    make_oci_layout(tmp_path / "src", [{"a": b"1" * 5000}, {"b": b"2" * 7000}, {"c": b"3"}])
    skopeo_push_layout(tmp_path / "src", "latest", f"{registry.host}/pp/src:1")
    original = pull(store, f"{registry.host}/pp/src:1").image

    chunked = push(
        store, f"{registry.host}/pp/src:1", f"{registry.host}/pp/pushed:chunked", chunk_size=1000
    )
    # Blob links are per repository: a new repository gets every blob (3 layers + config).
    assert len(chunked.uploaded) == 4 and chunked.skipped == []
    again = push(store, f"{registry.host}/pp/src:1", f"{registry.host}/pp/pushed:again")
    assert again.uploaded == [] and len(again.skipped) == 4
    assert again.digest == chunked.digest

    # skopeo sees what Berth pushed.
    out = skopeo(
        "inspect", "--tls-verify=false", "--raw", f"docker://{registry.host}/pp/pushed:again"
    )
    assert json.loads(out.stdout)["config"]["digest"] == original.id

    store.remove(original.id, force=True)
    assert store.list() == []
    back = pull(store, f"{registry.host}/pp/pushed@{chunked.digest}")
    assert back.image.id == original.id


def test_push_monolithic_upload(registry, store, tmp_path):
    make_oci_layout(tmp_path / "src", [{"big": os.urandom(300_000)}, {"small": b"s"}])
    skopeo_push_layout(tmp_path / "src", "latest", f"{registry.host}/pp/upsrc:1")
    image = pull(store, f"{registry.host}/pp/upsrc:1").image
    result = push(store, image.id, f"{registry.host}/fresh/chunks:1")
    assert len(result.uploaded) == 3 and result.skipped == []
    client = RegistryClient(registry.host)
    body, mtype, digest = client.get_manifest("fresh/chunks", "1")
    assert digest == result.digest and mtype == media.OCI_MANIFEST
    assert client.tags("fresh/chunks") == ["1"]


def test_unknown_tag_is_a_clear_error(registry, store, tmp_path):
    make_oci_layout(tmp_path / "l", [{"x": b"x"}])
    skopeo_push_layout(tmp_path / "l", "latest", f"{registry.host}/pp/known:1")
    with pytest.raises(ManifestNotFound, match="not found"):
        pull(store, f"{registry.host}/pp/known:nope")
    with pytest.raises(ManifestNotFound):
        pull(store, f"{registry.host}/pp/never-pushed:1")
    assert _store_is_clean(store)


def test_corrupt_blob_is_refused_and_nothing_stays(registry, store, tmp_path):
    info = make_oci_layout(
        tmp_path / "l",
        [{"ok": b"fine layer for corrupt test"}, {"bad": b"this layer gets tampered"}],
    )
    skopeo_push_layout(tmp_path / "l", "latest", f"{registry.host}/pp/corrupt:1")
    blob = registry.blob_file(info["layers"][1]["digest"])
    data = bytearray(blob.read_bytes())
    data[-5] ^= 0xFF
    blob.write_bytes(bytes(data))

    with pytest.raises(DigestMismatch, match="corrupt"):
        pull(store, f"{registry.host}/pp/corrupt:1")
    assert _store_is_clean(store)


def test_manifest_list_picks_amd64_or_fails_clearly(registry, store, tmp_path):
    info = make_oci_layout(tmp_path / "l", [{"plat": b"platform test"}])
    skopeo_push_layout(tmp_path / "l", "latest", f"{registry.host}/pp/multi:single")
    client = RegistryClient(registry.host)
    body, mtype, digest = client.get_manifest("pp/multi", "single")
    entry = {"mediaType": mtype, "digest": digest, "size": len(body)}

    def put_index(tag, platforms):
        index = {
            "schemaVersion": 2,
            "mediaType": media.OCI_INDEX,
            "manifests": [
                {**entry, "platform": {"os": "linux", "architecture": a}} for a in platforms
            ],
        }
        client.put_manifest("pp/multi", tag, json.dumps(index).encode(), media.OCI_INDEX)

    put_index("armonly", ["arm64", "s390x"])
    with pytest.raises(PlatformNotFound, match=r"linux/amd64.*linux/arm64, linux/s390x"):
        pull(store, f"{registry.host}/pp/multi:armonly")
    assert _store_is_clean(store)

    put_index("both", ["arm64", "amd64"])
    result = pull(store, f"{registry.host}/pp/multi:both")
    assert result.image.id == info["config_digest"] and result.digest == digest


def test_catalog_search_and_tags(registry, tmp_path):
    make_oci_layout(tmp_path / "l", [{"s": b"search me"}])
    skopeo_push_layout(tmp_path / "l", "latest", f"{registry.host}/findme/alpha:1")
    skopeo_push_layout(tmp_path / "l", "latest", f"{registry.host}/findme/alpha:2")
    found = search("findme", registry.host)
    assert [r["name"] for r in found] == [f"{registry.host}/findme/alpha"]
    assert sorted(RegistryClient(registry.host).tags("findme/alpha")) == ["1", "2"]
    assert search("no-such-thing-here", registry.host) == []


def test_skopeo_copies_berth_export_to_registry(registry, store, tmp_path):
    make_oci_layout(tmp_path / "l", [{"exp": b"exported by berth"}])
    skopeo_push_layout(tmp_path / "l", "latest", f"{registry.host}/pp/exp:1")
    image = pull(store, f"{registry.host}/pp/exp:1").image
    archive = tmp_path / "saved.tar"
    store.export_docker_archive(image.id, archive)
    try:
        skopeo(
            "copy",
            "--dest-tls-verify=false",
            f"docker-archive:{archive}",
            f"docker://{registry.host}/pp/fromarchive:1",
        )
    except subprocess.CalledProcessError as exc:
        pytest.fail(exc.stderr)
    store.remove(image.id, force=True)
    back = pull(store, f"{registry.host}/pp/fromarchive:1")
    assert back.image.id == image.id


def test_docker_schema2_manifest_and_manifest_list(registry, store, tmp_path):
    info = make_oci_layout(tmp_path / "l", [{"v2s2": b"docker schema 2"}, {"more": b"layer two"}])
    skopeo(
        "copy", "--dest-tls-verify=false", "--format", "v2s2",
        f"oci:{tmp_path / 'l'}:latest", f"docker://{registry.host}/pp/v2s2:1",
    )  # fmt: skip
    client = RegistryClient(registry.host)
    body, mtype, digest = client.get_manifest("pp/v2s2", "1")
    assert mtype == media.DOCKER_MANIFEST
    listing = {
        "schemaVersion": 2,
        "mediaType": media.DOCKER_LIST,
        "manifests": [
            {
                "mediaType": mtype,
                "digest": digest,
                "size": len(body),
                "platform": {"os": "linux", "architecture": "amd64"},
            }
        ],
    }
    client.put_manifest("pp/v2s2", "list", json.dumps(listing).encode(), media.DOCKER_LIST)
    result = pull(store, f"{registry.host}/pp/v2s2:list")
    assert result.image.id == info["config_digest"] and result.digest == digest
    # The stored manifest is the registry's, byte for byte: a push gives the same digest.
    again = push(store, result.image.id, f"{registry.host}/pp/v2s2copy:1")
    assert again.digest == digest


def test_tampered_manifest_is_refused_when_pulled_by_digest(registry, store, tmp_path):
    info = make_oci_layout(tmp_path / "l", [{"m": b"manifest tamper test"}])
    skopeo_push_layout(tmp_path / "l", "latest", f"{registry.host}/pp/mtamper:1")
    manifest = registry.blob_file(info["manifest_digest"])
    doc = json.loads(manifest.read_bytes())
    doc["annotations"] = {"evil": "yes"}
    manifest.write_bytes(json.dumps(doc).encode())
    with pytest.raises(DigestMismatch, match="manifest"):
        pull(store, f"{registry.host}/pp/mtamper@{info['manifest_digest']}")
    assert _store_is_clean(store)


def test_tls_registry_on_loopback(tls_registry, store, tmp_path):
    info = make_oci_layout(tmp_path / "l", [{"tls": b"over https"}])
    skopeo_push_layout(tmp_path / "l", "latest", f"{tls_registry.host}/pp/tls:1")
    client = RegistryClient(tls_registry.host)
    assert client.transport.scheme == "https"  # TLS first; plain HTTP only as a loopback fallback
    result = pull(store, f"{tls_registry.host}/pp/tls:1")
    assert result.image.id == info["config_digest"]


def test_push_gzips_layers_stored_uncompressed(registry, store, tmp_path):
    # skopeo's docker-archive holds plain tar layers; the store keeps them that way.
    info = make_oci_layout(tmp_path / "l", [{"plain": b"uncompressed layer " * 100}])
    archive = tmp_path / "plain.tar"
    skopeo("copy", f"oci:{tmp_path / 'l'}:latest", f"docker-archive:{archive}:plain/img:1")
    image = store.load_archive(archive)[0]
    stored = [layer["mediaType"] for layer in image.manifest["layers"]]
    assert all(not t.endswith("gzip") for t in stored)

    result = push(store, "plain/img:1", f"{registry.host}/pp/gzipped:1")
    body, _, _ = RegistryClient(registry.host).get_manifest("pp/gzipped", "1")
    assert [layer["mediaType"] for layer in json.loads(body)["layers"]] == [media.OCI_LAYER]
    # A second push finds the same gzip blob (reproducible compression).
    assert push(store, "plain/img:1", f"{registry.host}/pp/gzipped:2").uploaded == []

    store.remove("plain/img:1")
    back = pull(store, f"{registry.host}/pp/gzipped@{result.digest}")
    assert back.image.id == info["config_digest"]
