"""Manifest media types and the choice of this host's image from an index."""

import json
import platform

from runtime.registry.errors import PlatformNotFound, RegistryError

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v1+json",
)
ACCEPT = (OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
INDEXES = (OCI_INDEX, DOCKER_LIST)
MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
LAYER_TYPES = (
    DOCKER_LAYER,
    OCI_LAYER,
    OCI_LAYER_TAR,
    "application/vnd.docker.image.rootfs.diff.tar",
)

_ARCH = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "armv7l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
}


def host_platform() -> tuple[str, str]:
    """This host's (os, architecture) in OCI words, e.g. ("linux", "amd64")."""
    machine = platform.machine()
    return "linux", _ARCH.get(machine, machine)


def manifest_type(body: bytes, content_type: str | None) -> str:
    """The manifest's media type: its own mediaType field first, then the header."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise RegistryError("the registry sent a manifest that is not JSON") from exc
    if not isinstance(data, dict):
        raise RegistryError("the registry sent a manifest that is not a JSON object")
    mtype = data.get("mediaType") or (content_type or "").split(";")[0].strip()
    if mtype in SCHEMA1 or data.get("schemaVersion") == 1:
        raise RegistryError("Docker schema 1 manifests are not supported (push the image again)")
    if not mtype:
        # OCI allows omitting mediaType: an index has "manifests", an image "layers".
        mtype = OCI_INDEX if "manifests" in data else OCI_MANIFEST
    if mtype not in ACCEPT:
        raise RegistryError(f"unsupported manifest media type {mtype!r}")
    return mtype


def select_platform(index: dict, want: tuple[str, str] | None = None) -> dict:
    """The index entry for `want` (default this host), else PlatformNotFound naming the choice."""
    os_name, arch = want or host_platform()
    offered = []
    for entry in index.get("manifests") or []:
        plat = entry.get("platform") or {}
        offered.append(f"{plat.get('os', '?')}/{plat.get('architecture', '?')}")
        if plat.get("os") == os_name and plat.get("architecture") == arch:
            if arch == "arm64" and plat.get("variant") not in (None, "v8"):
                continue
            return entry
    raise PlatformNotFound(
        f"no image for {os_name}/{arch} in this manifest list (it offers: "
        f"{', '.join(offered) or 'nothing'})"
    )
