"""Image references on the web side (which never imports `runtime`): the registry part only."""

import re

# A reference: [registry/]repository[:tag][@digest], Docker's grammar, loosely.
REF_RE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._:\-\[\]]*(/[a-z0-9][a-z0-9._-]*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$"
)
ADDRESS_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?$")
DOCKER_HUB = "docker.io"


def has_host(ref: str) -> bool:
    """Whether the reference's first part names a registry host (Docker's rule)."""
    first, sep, _ = ref.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


def registry_of(ref: str) -> str:
    """The host[:port] a reference names; docker.io when its first part is not a host."""
    return ref.partition("/")[0] if has_host(ref) else DOCKER_HUB


def in_registry(ref: str, address: str) -> str:
    """`ref` placed in the registry `address` when it names no registry itself."""
    return ref if has_host(ref) else f"{address}/{ref}"
