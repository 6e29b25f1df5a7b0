"""Write images as a `docker save` tarball (manifest.json, <id>.json, <diff id>/layer.tar)."""

import io
import json
import os
import shutil
import tarfile
import tempfile

from runtime.images import streams


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _add_layer(tar: tarfile.TarFile, name: str, blob_path, scratch: str) -> None:
    """Add a layer uncompressed, as docker save does (its digest is then the diff id)."""
    with open(blob_path, "rb") as blob:
        kind = streams.sniff(blob.read(6))
        blob.seek(0)
        if kind is None:
            info = tarfile.TarInfo(name)
            info.size = os.fstat(blob.fileno()).st_size
            info.mode = 0o644
            tar.addfile(info, blob)
            return
        plain_path = os.path.join(scratch, "layer.tar")
        with streams.decompressor(blob, kind, name) as src, open(plain_path, "wb") as out:
            shutil.copyfileobj(src, out, streams.CHUNK)
    with open(plain_path, "rb") as plain:
        info = tarfile.TarInfo(name)
        info.size = os.fstat(plain.fileno()).st_size
        info.mode = 0o644
        tar.addfile(info, plain)
    os.unlink(plain_path)


def write_docker_archive(layout, chosen, path: str) -> None:
    """Write `chosen` [(Image, tags)] to `path` atomically (a temporary name, then rename)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, partial = tempfile.mkstemp(prefix=".berth-save-", dir=directory)
    os.close(fd)
    scratch = layout.scratch()
    try:
        manifest, written = [], set()
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            for image, tags in chosen:
                config_name = image.id.partition(":")[2] + ".json"
                if config_name not in written:
                    _add_bytes(
                        tar, config_name, layout.read_blob(image.manifest["config"]["digest"])
                    )
                    written.add(config_name)
                layer_names = []
                for descriptor, diff_id in zip(image.manifest["layers"], image.layers, strict=True):
                    name = diff_id.partition(":")[2] + "/layer.tar"
                    if name not in written:
                        _add_layer(tar, name, layout.blob_path(descriptor["digest"]), scratch)
                        written.add(name)
                    layer_names.append(name)
                manifest.append(
                    {"Config": config_name, "RepoTags": list(tags), "Layers": layer_names}
                )
            _add_bytes(tar, "manifest.json", json.dumps(manifest).encode())
        os.replace(partial, path)
    except BaseException:
        if os.path.exists(partial):
            os.unlink(partial)
        raise
    finally:
        layout.discard(scratch)


OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _add_file(tar: tarfile.TarFile, name: str, path) -> None:
    with open(path, "rb") as blob:
        info = tarfile.TarInfo(name)
        info.size = os.fstat(blob.fileno()).st_size
        info.mode = 0o644
        tar.addfile(info, blob)


def write_oci_archive(layout, chosen, path: str) -> None:
    """Write `chosen` [(Image, tags)] to `path` as an OCI image layout tarball, atomically.

    Blobs are copied as stored (layers keep their compression, so every digest in the
    manifests stays true). Each tag gets a descriptor carrying the full name, as containerd
    writes it, and the bare tag in the OCI ref-name annotation, as skopeo's oci: transport
    expects.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, partial = tempfile.mkstemp(prefix=".berth-save-", dir=directory)
    os.close(fd)
    try:
        descriptors, written = [], set()
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
            for image, tags in chosen:
                digests = [image.digest, image.manifest["config"]["digest"]]
                digests += [layer["digest"] for layer in image.manifest["layers"]]
                for digest in digests:
                    if digest not in written:
                        algorithm, _, hexdigest = digest.partition(":")
                        _add_file(tar, f"blobs/{algorithm}/{hexdigest}", layout.blob_path(digest))
                        written.add(digest)
                base = {
                    "mediaType": image.manifest.get("mediaType", OCI_MANIFEST),
                    "digest": image.digest,
                    "size": layout.blob_path(image.digest).stat().st_size,
                }
                for tag in tags or [None]:
                    annotations = {}
                    if tag:
                        annotations = {
                            "io.containerd.image.name": tag,
                            "org.opencontainers.image.ref.name": tag.rpartition(":")[2],
                        }
                    descriptors.append(base | ({"annotations": annotations} if tag else {}))
            index = {"schemaVersion": 2, "manifests": descriptors}
            _add_bytes(tar, "index.json", json.dumps(index).encode())
        os.replace(partial, path)
    except BaseException:
        if os.path.exists(partial):
            os.unlink(partial)
        raise
