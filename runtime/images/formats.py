"""Read image archives: `docker save` tarballs (both layouts), OCI layout tarballs, plain rootfs.

Reading only describes what an archive holds (configs, manifests, layers and the digests they
claim); the store checks every digest while it copies and unpacks the bytes.
"""

import hashlib
import json
import os
import platform
import posixpath
import re
import shutil
import tarfile
from dataclasses import dataclass, field

from runtime.errors import ImageError
from runtime.images import reference, streams

MAX_JSON = 16 * 1024 * 1024
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CONFIG_NAME = re.compile(r"^(?:blobs/sha256/)?([0-9a-f]{64})(?:\.json)?$")
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
GOARCH = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "armv7l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
}


def host_arch() -> str:
    """This machine's architecture in OCI (Go) spelling."""
    machine = platform.machine()
    return GOARCH.get(machine, machine)


@dataclass
class LayerSource:
    """One layer as an archive holds it, with the digests it claims."""

    name: str
    member: str | None  # archive member, or None for the archive file itself (rootfs)
    blob_digest: str | None = None
    blob_size: int | None = None
    diff_id: str | None = None


@dataclass
class ImageSource:
    """One image found in an archive."""

    config: bytes
    layers: list[LayerSource]
    manifest: bytes | None = None  # kept as-is from OCI archives; generated otherwise
    tags: list[str] = field(default_factory=list)


def check_digest(data: bytes, digest: str, what: str) -> None:
    """Refuse `data` unless it hashes to `digest` ("sha256:<hex>")."""
    algorithm, _, hexdigest = digest.partition(":")
    if algorithm != "sha256" or not _HEX64.match(hexdigest):
        raise ImageError(f"{what}: unsupported digest {digest!r}")
    actual = hashlib.sha256(data).hexdigest()
    if actual != hexdigest:
        raise ImageError(f"{what}: digest mismatch (expected {digest}, got sha256:{actual})")


def parse_json(data: bytes, what: str, kind=dict):
    """Parse a JSON document of type `kind` from an archive; any error is an ImageError."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise ImageError(f"{what} is not valid JSON: {err}") from None
    if not isinstance(doc, kind):
        raise ImageError(f"{what} is not a JSON {kind.__name__}")
    return doc


class Archive:
    """An image tarball opened for random access (decompressed to `scratch` first if needed)."""

    def __init__(self, path: str, scratch: str):
        self.path = path
        self.label = os.path.basename(path)
        try:
            with open(path, "rb") as raw:
                kind = streams.sniff(raw.read(6))
                raw.seek(0)
                if kind is not None:
                    # Random access into a compressed stream is slow: unpack it to disk once.
                    self.path = os.path.join(scratch, "archive.tar")
                    with (
                        streams.decompressor(raw, kind, self.label) as src,
                        open(self.path, "wb") as out,
                    ):
                        shutil.copyfileobj(src, out, streams.CHUNK)
            self.compression = kind
            self.tar = tarfile.open(self.path, "r:")  # noqa: SIM115 -- closed by close()
            self.size = os.path.getsize(self.path)
            self.members = {}
            for member in self.tar.getmembers():
                self.members[posixpath.normpath(member.name).lstrip("/")] = member
            # tarfile takes a missing header for the end: demand the end-of-archive block.
            self.tar.fileobj.seek(self.tar.offset)
            end = self.tar.fileobj.read(tarfile.BLOCKSIZE)
            if len(end) < tarfile.BLOCKSIZE or end.strip(b"\0"):
                raise ImageError(
                    f"{self.label}: archive is truncated or corrupt (no end-of-archive marker)"
                )
        except streams.STREAM_ERRORS as err:
            raise ImageError(
                f"{self.label}: not a readable tar archive, truncated or corrupt ({err})"
            ) from None

    def close(self) -> None:
        """Close the underlying tar file."""
        self.tar.close()

    def has(self, name: str) -> bool:
        """True if the archive holds a member with this name."""
        return name in self.members

    def member(self, name: str) -> tarfile.TarInfo:
        """The regular-file member `name`, following links inside the archive."""
        seen = 0
        member = self.members.get(name)
        while member is not None and (member.issym() or member.islnk()) and seen < 8:
            base = posixpath.dirname(name) if member.issym() else ""
            name = posixpath.normpath(posixpath.join(base, member.linkname)).lstrip("/")
            member = self.members.get(name)
            seen += 1
        if member is None or not member.isreg():
            raise ImageError(f"{self.label}: member {name!r} is missing")
        if member.offset_data + member.size > self.size:
            raise ImageError(f"{self.label}: archive is truncated (member {name!r} is cut off)")
        return member

    def open(self, name: str):
        """A file object reading member `name`."""
        return self.tar.extractfile(self.member(name))

    def read(self, name: str, what: str) -> bytes:
        """The bytes of a small member (JSON files)."""
        member = self.member(name)
        if member.size > MAX_JSON:
            raise ImageError(f"{self.label}: {what} is too large")
        try:
            return self.tar.extractfile(member).read()
        except streams.STREAM_ERRORS as err:
            raise ImageError(f"{self.label}: cannot read {what}: {err}") from None

    def kind(self) -> str:
        """ "docker", "oci" or "rootfs", by the files at the archive's top."""
        if self.has("manifest.json"):
            return "docker"
        if self.has("index.json") and self.has("oci-layout"):
            return "oci"
        return "rootfs"


def _diff_ids(config: bytes, layer_count: int, what: str) -> list[str]:
    doc = parse_json(config, what)
    rootfs = doc.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise ImageError(f"{what}: rootfs.diff_ids is missing")
    if len(diff_ids) != layer_count:
        raise ImageError(f"{what}: {len(diff_ids)} diff ids for {layer_count} layers")
    return diff_ids


def read_docker(archive: Archive) -> list[ImageSource]:
    """Describe the images of a `docker save` archive (manifest.json at the top)."""
    manifest = parse_json(archive.read("manifest.json", "manifest.json"), "manifest.json", list)
    if not manifest:
        raise ImageError(f"{archive.label}: manifest.json lists no images")
    images = []
    for entry in manifest:
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise ImageError(f"{archive.label}: manifest.json entry without Config")
        config_name = entry["Config"]
        config = archive.read(config_name, f"config {config_name}")
        named = _CONFIG_NAME.match(config_name)
        if named:
            check_digest(
                config, "sha256:" + named.group(1), f"{archive.label}: config {config_name}"
            )
        layer_names = entry.get("Layers") or []
        if not isinstance(layer_names, list) or not all(isinstance(n, str) for n in layer_names):
            raise ImageError(f"{archive.label}: manifest.json Layers is not a list of names")
        diff_ids = _diff_ids(config, len(layer_names), f"{archive.label}: config {config_name}")
        layers = []
        for name, diff_id in zip(layer_names, diff_ids, strict=True):
            blob = re.match(r"^blobs/sha256/([0-9a-f]{64})$", name)
            layers.append(
                LayerSource(
                    name=name,
                    member=name,
                    blob_digest="sha256:" + blob.group(1) if blob else None,
                    diff_id=diff_id,
                )
            )
        tags = []
        for tag in entry.get("RepoTags") or []:
            if not isinstance(tag, str) or not reference.is_valid_ref(tag):
                raise ImageError(f"{archive.label}: manifest.json has an invalid tag {tag!r}")
            tags.append(reference.normalize_ref(tag))
        images.append(ImageSource(config=config, layers=layers, tags=tags))
    return images


def _blob_name(digest: str, what: str) -> str:
    algorithm, _, hexdigest = str(digest).partition(":")
    if algorithm != "sha256" or not _HEX64.match(hexdigest):
        raise ImageError(f"{what}: unsupported digest {digest!r}")
    return f"blobs/sha256/{hexdigest}"


def _read_blob(archive: Archive, descriptor: dict, what: str) -> bytes:
    if not isinstance(descriptor, dict) or "digest" not in descriptor:
        raise ImageError(f"{archive.label}: {what} descriptor has no digest")
    data = archive.read(_blob_name(descriptor["digest"], what), what)
    check_digest(data, descriptor["digest"], f"{archive.label}: {what}")
    if "size" in descriptor and descriptor["size"] != len(data):
        raise ImageError(f"{archive.label}: {what} size mismatch")
    return data


def _pick_platform(archive: Archive, index: dict, what: str) -> dict:
    manifests = index.get("manifests") or []
    if len(manifests) == 1:
        return manifests[0]
    for descriptor in manifests:
        plat = descriptor.get("platform") or {}
        if plat.get("os") == "linux" and plat.get("architecture") == host_arch():
            return descriptor
    raise ImageError(f"{archive.label}: {what} has no image for linux/{host_arch()}")


def _oci_tags(annotations: dict) -> list[str]:
    for key in (CONTAINERD_NAME, REF_NAME):
        name = annotations.get(key)
        # A bare tag ("latest") names nothing without a repository: leave it untagged.
        if isinstance(name, str) and (":" in name or "/" in name) and reference.is_valid_ref(name):
            return [reference.normalize_ref(name)]
    return []


def read_oci(archive: Archive) -> list[ImageSource]:
    """Describe the images of an OCI image layout archive (oci-layout, index.json, blobs)."""
    index = parse_json(archive.read("index.json", "index.json"), "index.json")
    if not isinstance(index.get("manifests"), list) or not index["manifests"]:
        raise ImageError(f"{archive.label}: index.json lists no manifests")
    images = []
    for top in index["manifests"]:
        descriptor, depth = top, 0
        manifest = _read_blob(archive, descriptor, "manifest")
        doc = parse_json(manifest, "manifest")
        while doc.get("mediaType", descriptor.get("mediaType")) in (OCI_INDEX, DOCKER_LIST) or (
            "manifests" in doc and "layers" not in doc
        ):
            depth += 1
            if depth > 4:
                raise ImageError(f"{archive.label}: image index nests too deep")
            descriptor = _pick_platform(archive, doc, "image index")
            manifest = _read_blob(archive, descriptor, "manifest")
            doc = parse_json(manifest, "manifest")
        config = _read_blob(archive, doc.get("config"), "config")
        layer_descriptors = doc.get("layers") or []
        diff_ids = _diff_ids(config, len(layer_descriptors), f"{archive.label}: config")
        layers = []
        for descriptor, diff_id in zip(layer_descriptors, diff_ids, strict=True):
            name = _blob_name(descriptor.get("digest"), "layer")
            layers.append(
                LayerSource(
                    name=name,
                    member=name,
                    blob_digest=descriptor["digest"],
                    blob_size=descriptor.get("size"),
                    diff_id=diff_id,
                )
            )
        tags = _oci_tags(top.get("annotations") or {})
        images.append(ImageSource(config=config, layers=layers, manifest=manifest, tags=tags))
    return images
