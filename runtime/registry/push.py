"""Push an image from the local store to a registry: blobs first (skipping those present), then the manifest."""

import gzip
import hashlib
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import InvalidSpec
from runtime.registry import media
from runtime.registry.pull import DEFAULT_WORKERS, _emit, client_for
from runtime.registry.reference import Reference, parse

_UNCOMPRESSED = (media.OCI_LAYER_TAR, "application/vnd.docker.image.rootfs.diff.tar")


@dataclass
class PushResult:
    """What a push did: the manifest digest and which blobs were uploaded or already there."""

    digest: str
    reference: Reference
    uploaded: list[str]
    skipped: list[str]


def _gzip_file(src: Path, dest: Path) -> tuple[str, int]:
    """Compress a layer reproducibly (no timestamp), so a second push finds it present."""
    hasher = hashlib.sha256()
    with (
        open(src, "rb") as raw,
        open(dest, "wb") as out,
        gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=6) as gz,
    ):
        shutil.copyfileobj(raw, gz, 1 << 20)
    with open(dest, "rb") as done:
        for chunk in iter(lambda: done.read(1 << 20), b""):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest(), dest.stat().st_size


def _prepare(store, image, scratch: Path) -> tuple[bytes, str, dict[str, Path]]:
    """The manifest to push and its blobs; uncompressed layers are gzipped on the way."""
    body = store.layout.read_blob(image.digest)
    manifest = json.loads(body)
    mtype = manifest.get("mediaType") or media.OCI_MANIFEST
    config_digest = manifest["config"]["digest"]
    blobs = {config_digest: store.layout.blob_path(config_digest)}
    changed = False
    new_layers = []
    for layer in manifest.get("layers") or []:
        path = store.layout.blob_path(layer["digest"])
        if layer.get("mediaType") in _UNCOMPRESSED:
            dest = scratch / layer["digest"].split(":", 1)[1]
            digest, size = _gzip_file(path, dest)
            gz_type = media.DOCKER_LAYER if mtype == media.DOCKER_MANIFEST else media.OCI_LAYER
            layer = {**layer, "mediaType": gz_type, "digest": digest, "size": size}
            path, changed = dest, True
        blobs[layer["digest"]] = path
        new_layers.append(layer)
    if changed:
        manifest["layers"] = new_layers
        body = json.dumps(manifest, separators=(",", ":")).encode()
    return body, mtype, blobs


def push(
    store,
    local_ref: str,
    target: str | None = None,
    *,
    credentials=None,
    insecure: bool = False,
    progress=None,
    chunk_size: int | None = None,
    workers: int = DEFAULT_WORKERS,
) -> PushResult:
    """Push the stored image `local_ref` as `target` (default: the same name) to its registry."""
    image = store.resolve(local_ref)
    ref = parse(target or local_ref)
    if ref.digest:
        raise InvalidSpec(f"push {ref}: give a tag, not a digest")
    client = client_for(ref, credentials, insecure)
    scratch = Path(store.layout.scratch())
    try:
        body, mtype, blobs = _prepare(store, image, scratch)
        uploaded, skipped = [], []

        def send(item):
            digest, path = item
            if client.blob_exists(ref.repository, digest, "pull,push"):
                skipped.append(digest)
                _emit(progress, status="Layer already exists", id=digest)
                return
            _emit(progress, status="Pushing", id=digest, total=path.stat().st_size)
            client.upload_blob(ref.repository, digest, path, chunk_size=chunk_size)
            uploaded.append(digest)
            _emit(progress, status="Pushed", id=digest)

        # One authenticated request first, so the threads share one token.
        client.blob_exists(ref.repository, next(iter(blobs)), "pull,push")
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(blobs)))) as pool:
            for future in [pool.submit(send, item) for item in blobs.items()]:
                future.result()
        digest = client.put_manifest(ref.repository, ref.tag, body, mtype)
    finally:
        store.layout.discard(scratch)
    _emit(progress, status="Push complete", id=str(ref), digest=digest)
    return PushResult(digest, ref, uploaded, skipped)
