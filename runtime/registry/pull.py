"""Pull an image from a registry into the local store: verified, parallel, resumable by layer."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import ImageError
from runtime.images.model import Image
from runtime.registry import media
from runtime.registry.archive import write_oci_archive
from runtime.registry.client import RegistryClient
from runtime.registry.errors import RegistryError
from runtime.registry.reference import Reference, parse

DEFAULT_WORKERS = 4


@dataclass
class PullResult:
    """What a pull produced: the stored image, the manifest digest and what was downloaded."""

    image: Image
    digest: str
    reference: Reference
    downloaded: list[str]
    reused: list[str]


class _Cancelled(Exception):
    pass


def client_for(ref: Reference, credentials=None, insecure=False) -> RegistryClient:
    """A client for the registry `ref` names, with (user, password) credentials if given."""
    user, password = credentials if credentials else (None, None)
    return RegistryClient(ref.api_host, username=user, password=password, insecure=insecure)


def _emit(progress, **event) -> None:
    if progress is not None:
        progress(event)


def resolve_manifest(
    client: RegistryClient, ref: Reference, platform=None
) -> tuple[bytes, str, str]:
    """The image manifest for this host's platform: (body, media type, digest)."""
    body, mtype, digest = client.get_manifest(ref.repository, ref.reference)
    if mtype in media.INDEXES:
        entry = media.select_platform(json.loads(body), platform)
        body, mtype, digest = client.get_manifest(ref.repository, entry["digest"])
        if digest != entry["digest"]:
            raise ImageError(f"{ref}: manifest digest differs from the index entry")
        if mtype not in media.MANIFESTS:
            raise RegistryError(f"{ref}: index entry {digest} is not an image manifest")
    return body, mtype, digest


def pull(
    store,
    ref_text: str,
    *,
    credentials=None,
    insecure: bool = False,
    progress=None,
    workers: int = DEFAULT_WORKERS,
    platform=None,
) -> PullResult:
    """Pull `ref_text` (by tag or @digest) into `store`; progress(event dict) reports each layer.

    Every blob is checked against its digest; layers the store already holds are not
    downloaded. On any error nothing is added to the store.
    """
    ref = parse(ref_text)
    client = client_for(ref, credentials, insecure)
    _emit(progress, status="Resolving", id=str(ref))
    body, mtype, digest = resolve_manifest(client, ref, platform)
    manifest = json.loads(body)
    config_desc = manifest.get("config") or {}
    layers = manifest.get("layers") or []
    for layer in layers:
        if layer.get("mediaType") not in media.LAYER_TYPES:
            raise RegistryError(f"{ref}: unsupported layer type {layer.get('mediaType')!r}")
        if not isinstance(layer.get("size"), int) or layer["size"] < 0:
            raise RegistryError(f"{ref}: layer {layer.get('digest')} has no valid size")
    config = client.get_blob_bytes(ref.repository, config_desc.get("digest", ""))
    diff_ids = (json.loads(config).get("rootfs") or {}).get("diff_ids") or []
    if len(diff_ids) != len(layers):
        raise ImageError(f"{ref}: config lists {len(diff_ids)} layers, manifest {len(layers)}")
    tag = ref.tagged()
    image_id = config_desc["digest"]
    existing = {image.id: image for image in store.list()}
    if image_id in existing:
        # The whole image is here already: a pull only (re)points the tag.
        if tag:
            store.tag(image_id, tag)
        for layer in layers:
            _emit(progress, status="Already exists", id=layer["digest"], total=layer["size"])
        return PullResult(store.resolve(image_id), digest, ref, [], [d["digest"] for d in layers])

    scratch = Path(store.layout.scratch())
    try:
        sources, downloaded, reused = _fetch_layers(
            client, ref, store, layers, scratch, progress, workers
        )
        sources[image_id] = config
        archive = scratch / "pull.tar"
        write_oci_archive(archive, body, mtype, sources, None)
        _emit(progress, status="Extracting", id=str(ref))
        images = store.load_archive(archive, ref=tag, kind="oci")
    finally:
        store.layout.discard(scratch)
    _emit(progress, status="Pull complete", id=str(ref), digest=digest)
    return PullResult(images[0], digest, ref, downloaded, reused)


def _fetch_layers(client, ref, store, layers, scratch: Path, progress, workers):
    """Download missing layer blobs in parallel; returns ({digest: path}, downloaded, reused)."""
    sources: dict[str, Path] = {}
    todo, reused = [], []
    for layer in layers:
        digest = layer["digest"]
        if digest in sources:
            continue
        local = store.layout.blob_path(digest)
        if local.is_file():
            sources[digest] = local
            reused.append(digest)
            _emit(progress, status="Already exists", id=digest, total=layer["size"])
        else:
            sources[digest] = scratch / digest.split(":", 1)[1]
            todo.append(layer)
    cancel = threading.Event()

    def fetch(layer):
        digest, size = layer["digest"], layer["size"]

        def report(done):
            if cancel.is_set():
                raise _Cancelled()
            _emit(progress, status="Downloading", id=digest, current=done, total=size)

        client.download_blob(ref.repository, digest, sources[digest], size=size, progress=report)
        _emit(progress, status="Download complete", id=digest, total=size)

    if todo:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo)))) as pool:
            futures = [pool.submit(fetch, layer) for layer in todo]
            errors = []
            for future in futures:
                try:
                    future.result()
                except _Cancelled:
                    pass
                except BaseException as exc:  # first real error wins; stop the others
                    cancel.set()
                    errors.append(exc)
            if errors:
                raise errors[0]
    return sources, [layer["digest"] for layer in todo], reused
