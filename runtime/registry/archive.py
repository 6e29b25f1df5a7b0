"""Hand verified blobs to the image store as one OCI layout tarball (its public import path).

The store verifies every digest again while it unpacks and commits under its lock, so an
image reaches the store whole or not at all.
"""

import json
import os
import tarfile
from pathlib import Path

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    import io

    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def write_oci_archive(
    dest: Path, manifest: bytes, media_type: str, blobs: dict[str, Path | bytes], tag: str | None
) -> None:
    """Write an OCI layout tar: index.json naming `manifest`, and every blob (digest -> source)."""
    import hashlib

    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    descriptor = {"mediaType": media_type, "digest": manifest_digest, "size": len(manifest)}
    if tag:
        descriptor["annotations"] = {REF_NAME: tag}
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor]}
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        _add_bytes(tar, "index.json", json.dumps(index).encode())
        _add_bytes(tar, f"blobs/sha256/{manifest_digest.split(':', 1)[1]}", manifest)
        for digest, source in blobs.items():
            name = f"blobs/sha256/{digest.split(':', 1)[1]}"
            if isinstance(source, bytes):
                _add_bytes(tar, name, source)
                continue
            info = tarfile.TarInfo(name)
            info.size = os.path.getsize(source)
            info.mode = 0o644
            with open(source, "rb") as src:
                tar.addfile(info, src)
