"""Build real layer tars and image archives (docker save, OCI layout, rootfs) for the tests."""

import gzip
import hashlib
import io
import json
import os
import tarfile

from runtime.images.formats import host_arch


def sha(data: bytes) -> str:
    """ "sha256:<hex>" of data."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer(entries, mtime=1700000000) -> bytes:
    """A layer tar from entries (name, value): value bytes = file, None = dir,
    ("sym", target), ("hard", target), ("chr"|"blk", major, minor), or a dict of TarInfo fields
    with optional "data"."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, value in entries:
            info = tarfile.TarInfo(name)
            info.mtime = mtime
            data = None
            if value is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif isinstance(value, bytes):
                info.size, info.mode, data = len(value), 0o644, value
            elif isinstance(value, dict):
                fields = dict(value)
                data = fields.pop("data", None)
                for key, field in fields.items():
                    setattr(info, key, field)
                if data is not None:
                    info.size = len(data)
            elif value[0] == "sym":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, value[1], 0o777
            elif value[0] == "hard":
                info.type, info.linkname, info.mode = tarfile.LNKTYPE, value[1], 0o644
            elif value[0] in ("chr", "blk"):
                info.type = tarfile.CHRTYPE if value[0] == "chr" else tarfile.BLKTYPE
                info.devmajor, info.devminor, info.mode = value[1], value[2], 0o666
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def config_for(layers, **config) -> bytes:
    """An image config whose diff ids match the (uncompressed) layers."""
    doc = {
        "architecture": host_arch(),
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [sha(data) for data in layers]},
    }
    return json.dumps(doc).encode()


def _add(tar, name, data, **fields):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    for key, value in fields.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data))


def docker_archive(path, images, new_layout=False, compress=False, config_bytes=None):
    """Write a `docker save` tar of images [(layers, tags, config dict)]; returns config digests.

    new_layout: Docker 25+ style (blobs/sha256, oci-layout, index.json, symlinked layer.tar).
    """
    ids, manifest, written = [], [], set()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        if new_layout:
            _add(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        for layers, tags, config in images:
            cfg = config_bytes if config_bytes is not None else config_for(layers, **config)
            ids.append(sha(cfg))
            hexid = ids[-1].split(":")[1]
            config_name = f"blobs/sha256/{hexid}" if new_layout else f"{hexid}.json"
            if config_name not in written:
                _add(tar, config_name, cfg)
                written.add(config_name)
            names = []
            for data in layers:
                digest = sha(data).split(":")[1]
                blob = f"blobs/sha256/{digest}"
                name = blob if new_layout else f"{digest}/layer.tar"
                if name not in written:
                    _add(tar, name, data)
                    written.add(name)
                    if new_layout:
                        link = tarfile.TarInfo(f"{digest}/layer.tar")
                        link.type, link.linkname = tarfile.SYMTYPE, f"../{blob}"
                        tar.addfile(link)
                names.append(name)
            manifest.append({"Config": config_name, "RepoTags": tags, "Layers": names})
        if new_layout:
            _add(tar, "index.json", json.dumps({"schemaVersion": 2, "manifests": []}).encode())
        _add(tar, "manifest.json", json.dumps(manifest).encode())
    data = buf.getvalue()
    with open(path, "wb") as out:
        out.write(gzip.compress(data) if compress else data)
    return ids


def oci_archive(
    path, layers, ref=None, gzip_layers=True, config=None, tamper_layer=False, nested=False
):
    """Write an OCI image layout tar of one image; returns its config digest."""
    cfg = config_for(layers, **(config or {"Cmd": ["sh"]}))
    blobs = {sha(cfg): cfg}
    descriptors = []
    for data in layers:
        stored = gzip.compress(data, mtime=0) if gzip_layers else data
        media = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gzip_layers else "")
        descriptors.append({"mediaType": media, "digest": sha(stored), "size": len(stored)})
        # Tampered: other bytes (another gzip mtime) that still unpack to the same diff id.
        blobs[sha(stored)] = gzip.compress(data, mtime=1) if tamper_layer else stored
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha(cfg),
                "size": len(cfg),
            },
            "layers": descriptors,
        }
    ).encode()
    blobs[sha(manifest)] = manifest
    top = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": sha(manifest),
        "size": len(manifest),
    }
    if nested:
        other = dict(top, platform={"os": "linux", "architecture": "s390x"})
        index = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [
                    other,
                    dict(top, platform={"os": "linux", "architecture": host_arch()}),
                ],
            }
        ).encode()
        blobs[sha(index)] = index
        top = {
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": sha(index),
            "size": len(index),
        }
    if ref:
        top["annotations"] = {"org.opencontainers.image.ref.name": ref}
    with tarfile.open(path, "w") as tar:
        _add(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add(tar, "index.json", json.dumps({"schemaVersion": 2, "manifests": [top]}).encode())
        for digest, data in blobs.items():
            _add(tar, "blobs/sha256/" + digest.split(":")[1], data)
    return sha(cfg)


def store_contents(store) -> dict:
    """What the store holds on disk: blob names, layer names, scratch entries, index entries."""
    layout = store.layout

    def names(path):
        return sorted(os.listdir(path)) if path.exists() else []

    return {
        "blobs": names(layout.blobs),
        "layers": names(layout.layers),
        "tmp": names(layout.tmp),
        "index": layout.read_index(),
    }


def assert_empty(store) -> None:
    """Nothing at all is stored: no blob, layer, scratch directory or index entry."""
    assert store_contents(store) == {"blobs": [], "layers": [], "tmp": [], "index": []}
