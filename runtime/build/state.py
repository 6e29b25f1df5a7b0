"""A build's image state (config + layers) and turning it into an image in the store."""

import copy
import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path

from runtime.errors import ImageError
from runtime.registry.archive import write_oci_archive

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


def now() -> str:
    """The current time in RFC 3339, as image configs record it."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class BuildState:
    """An image config and its layer descriptors (each with its diff id), lowest first."""

    config: dict
    layers: list[dict] = field(default_factory=list)
    raw: bytes | None = None  # the stored config bytes of an unchanged image (keeps its id)

    @classmethod
    def scratch(cls, platform: tuple[str, str]) -> "BuildState":
        """The empty image `FROM scratch` starts from."""
        return cls(
            {
                "architecture": platform[1],
                "os": platform[0],
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": []},
                "history": [],
            }
        )

    @classmethod
    def of_image(cls, store, image) -> "BuildState":
        """The state of an image in the store."""
        descs = image.manifest.get("layers") or []
        if len(descs) != len(image.layers):
            raise ImageError(f"image {image.short_id}: manifest and config disagree on layers")
        layers = [{**d, "diff_id": diff} for d, diff in zip(descs, image.layers, strict=True)]
        return cls(copy.deepcopy(image.config), layers, store.layout.read_blob(image.id))

    def to_dict(self) -> dict:
        """JSON form, for the build cache."""
        return {"config": self.config, "layers": self.layers}

    @classmethod
    def from_dict(cls, data: dict) -> "BuildState":
        """Parse the JSON form."""
        return cls(data["config"], data["layers"])

    def copy(self) -> "BuildState":
        """A deep copy to change for the next step."""
        return BuildState(copy.deepcopy(self.config), copy.deepcopy(self.layers))

    @property
    def inner(self) -> dict:
        """The config's "config" object (Env, Cmd, WorkingDir, ...), created if missing."""
        return self.config.setdefault("config", {})

    def env(self) -> dict:
        """Env as an ordered dict."""
        out = {}
        for item in self.inner.get("Env") or []:
            key, _, value = item.partition("=")
            out[key] = value
        return out

    def set_env(self, key: str, value: str) -> None:
        """Set one variable, keeping the order of the others."""
        env = self.env()
        env[key] = value
        self.inner["Env"] = [f"{k}={v}" for k, v in env.items()]

    def add_history(self, created_by: str, empty: bool, comment: str = "") -> None:
        """Record a step in the config's history, as `docker history` shows it."""
        entry = {"created": now(), "created_by": created_by}
        if comment:
            entry["comment"] = comment
        if empty:
            entry["empty_layer"] = True
        self.config.setdefault("history", []).append(entry)
        self.config["created"] = entry["created"]

    def add_layer(self, layer) -> None:
        """Append a new layer (a layers.LayerBlob)."""
        self.layers.append(layer.descriptor())
        self.config.setdefault("rootfs", {"type": "layers"})["diff_ids"] = [
            d["diff_id"] for d in self.layers
        ]

    def config_bytes(self) -> bytes:
        """The config blob; the same state always gives the same bytes (and image id)."""
        if self.raw is not None:
            return self.raw
        self.config.setdefault("rootfs", {"type": "layers"})["diff_ids"] = [
            d["diff_id"] for d in self.layers
        ]
        return json.dumps(self.config, separators=(",", ":"), sort_keys=True).encode()

    def manifest_bytes(self, config: bytes) -> bytes:
        """An OCI manifest for this state."""
        import hashlib

        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                "size": len(config),
            },
            "layers": [{k: v for k, v in d.items() if k != "diff_id"} for d in self.layers],
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    def image_id(self) -> str:
        """The id the image of this state has (its config digest)."""
        import hashlib

        return "sha256:" + hashlib.sha256(self.config_bytes()).hexdigest()


def blobs_available(store, state: BuildState, pending: dict) -> bool:
    """True if every layer blob is in the store or among `pending` new blobs."""
    return all(
        d["digest"] in pending or store.layout.blob_path(d["digest"]).is_file()
        for d in state.layers
    )


def materialize(store, state: BuildState, scratch: Path, pending: dict, tag: str | None = None):
    """The image of `state` in the store (created if needed); `pending` maps digest -> new blob file."""
    config = state.config_bytes()
    image_id = state.image_id()
    existing = {image.id for image in store.list()}
    if image_id in existing:
        if tag:
            store.tag(image_id, tag)
        return store.resolve(image_id), False
    blobs = {image_id: config}
    for d in state.layers:
        blobs[d["digest"]] = pending.get(d["digest"]) or store.layout.blob_path(d["digest"])
    archive = scratch / f"image-{image_id[7:19]}.tar"
    try:
        write_oci_archive(archive, state.manifest_bytes(config), OCI_MANIFEST, blobs, None)
        image = store.load_archive(archive, ref=tag, kind="oci")[0]
    finally:
        archive.unlink(missing_ok=True)
    return image, True
