"""Stage the images of an archive in a scratch directory, checking every digest on the way.

Each layer is read once: the bytes are hashed as stored (blob digest), decompressed and hashed
again (diff id) while they are unpacked. Nothing reaches the store's blobs/ or layers/ here; the
store renames the staged files into place under its lock once everything has been verified.
"""

import datetime
import hashlib
import json
import os
from dataclasses import dataclass, field

from runtime.errors import ImageError
from runtime.images import changes as image_changes
from runtime.images import formats, streams, unpack

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass
class StagedLayer:
    """A verified layer: its stored blob and its unpacked directory (None if already stored)."""

    blob_digest: str
    blob_size: int
    media_type: str
    diff_id: str
    size: int


@dataclass
class StagedImage:
    """A verified image whose blobs sit in the scratch directory."""

    id: str
    manifest_digest: str
    manifest_size: int
    manifest_media_type: str
    diff_ids: list[str]
    size: int
    tags: list[str] = field(default_factory=list)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Importer:
    """Stages the images of one archive under `scratch` (blobs/ and layers/ subfolders)."""

    def __init__(self, layout, scratch: str, label: str):
        self.layout = layout
        self.scratch = scratch
        self.label = label
        self.blobs = os.path.join(scratch, "blobs")
        self.layers = os.path.join(scratch, "layers")
        os.makedirs(self.blobs)
        os.makedirs(self.layers)
        self._done = {}  # member name -> StagedLayer, for layers shared inside one archive
        self._counter = 0

    def _has_layer(self, diff_id: str) -> bool:
        hexdigest = diff_id.partition(":")[2]
        return (
            os.path.isdir(os.path.join(self.layers, hexdigest))
            or self.layout.layer_path(diff_id).is_dir()
        )

    def _put_blob(self, data: bytes) -> str:
        digest = _digest(data)
        with open(os.path.join(self.blobs, digest.partition(":")[2]), "wb") as out:
            out.write(data)
        return digest

    def stage_layer(self, src, layer: formats.LayerSource, keep_as_stored: bool) -> StagedLayer:
        """Copy, hash, verify and unpack one layer stream `src` (seekable, at offset 0)."""
        what = f"{self.label}: layer {layer.name}"
        kind = streams.sniff(src.read(6))
        src.seek(0)
        # Layers are stored as imported when OCI can name their type; others decompressed.
        keep_as_stored = keep_as_stored and kind in (None, "gzip")
        self._counter += 1
        partial_blob = os.path.join(self.scratch, f"blob-{self._counter}")
        unpacked = None
        if layer.diff_id is None or not self._has_layer(layer.diff_id):
            unpacked = os.path.join(self.scratch, f"layer-{self._counter}")
            os.mkdir(unpacked)
        try:
            with open(partial_blob, "wb") as sink:
                blob_reader = streams.HashingReader(src, sink if keep_as_stored else None)
                plain = streams.decompressor(blob_reader, kind, what)
                diff_reader = streams.HashingReader(plain, None if keep_as_stored else sink)
                size = unpack.unpack_layer(diff_reader, unpacked, what)
                diff_reader.drain()
                blob_reader.drain()
        except streams.STREAM_ERRORS as err:
            raise ImageError(f"{what} is corrupt or truncated: {err}") from None
        if layer.diff_id is not None and diff_reader.digest != layer.diff_id:
            raise ImageError(
                f"{what}: diff id mismatch (config says {layer.diff_id}, content is {diff_reader.digest})"
            )
        stored = blob_reader if keep_as_stored else diff_reader
        if (
            keep_as_stored
            and layer.blob_digest is not None
            and blob_reader.digest != layer.blob_digest
        ):
            raise ImageError(
                f"{what}: digest mismatch (expected {layer.blob_digest}, content is {blob_reader.digest})"
            )
        if keep_as_stored and layer.blob_size is not None and blob_reader.size != layer.blob_size:
            raise ImageError(
                f"{what}: size mismatch (expected {layer.blob_size}, got {blob_reader.size})"
            )
        diff_id = diff_reader.digest
        os.rename(partial_blob, os.path.join(self.blobs, stored.digest.partition(":")[2]))
        if unpacked is not None:
            target = os.path.join(self.layers, diff_id.partition(":")[2])
            if self._has_layer(diff_id):
                self.layout.discard(unpacked)
            else:
                os.rename(unpacked, target)
        media = LAYER_GZIP if keep_as_stored and kind == "gzip" else LAYER_TAR
        return StagedLayer(stored.digest, stored.size, media, diff_id, size)

    def _stage_layers(self, archive, source: formats.ImageSource) -> list[StagedLayer]:
        staged = []
        for layer in source.layers:
            if layer.member in self._done:
                staged.append(self._done[layer.member])
                continue
            src = archive.open(layer.member)
            result = self.stage_layer(src, layer, keep_as_stored=True)
            self._done[layer.member] = result
            staged.append(result)
        return staged

    def _finish(
        self, config: bytes, manifest: bytes | None, layers: list[StagedLayer], tags
    ) -> StagedImage:
        config_digest = self._put_blob(config)
        if manifest is None:
            doc = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
                "layers": [
                    {
                        "mediaType": layer.media_type,
                        "digest": layer.blob_digest,
                        "size": layer.blob_size,
                    }
                    for layer in layers
                ],
            }
            manifest = json.dumps(doc, separators=(",", ":")).encode()
        manifest_digest = self._put_blob(manifest)
        return StagedImage(
            id=config_digest,
            manifest_digest=manifest_digest,
            manifest_size=len(manifest),
            manifest_media_type=formats.parse_json(manifest, "manifest").get("mediaType")
            or OCI_MANIFEST,
            diff_ids=[layer.diff_id for layer in layers],
            size=sum(layer.size for layer in layers),
            tags=list(tags),
        )

    def stage_archive(self, archive, sources: list[formats.ImageSource]) -> list[StagedImage]:
        """Stage every image of a docker-save or OCI archive."""
        return [
            self._finish(
                source.config, source.manifest, self._stage_layers(archive, source), source.tags
            )
            for source in sources
        ]

    def stage_rootfs(self, path: str, tag: str, changes=()) -> StagedImage:
        """Stage a one-layer image from a root filesystem tarball, with a generated config."""
        config = {
            "created": _now(),
            "architecture": formats.host_arch(),
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [
                {"created": "", "created_by": "berth import", "comment": "Imported from tarball"}
            ],
        }
        image_changes.apply_changes(config["config"], changes)
        with open(path, "rb") as src:
            layer = self.stage_layer(
                src,
                formats.LayerSource(name=os.path.basename(path), member=None),
                keep_as_stored=False,
            )
        config["rootfs"]["diff_ids"] = [layer.diff_id]
        config["history"][0]["created"] = config["created"]
        return self._finish(json.dumps(config).encode(), None, [layer], [tag])
