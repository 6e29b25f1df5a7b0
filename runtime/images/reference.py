"""Image references: parse, validate and normalize "name[:tag]" the way Docker does."""

import re

from runtime.errors import InvalidSpec

DEFAULT_TAG = "latest"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?)"
_NAME_RE = re.compile(rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
HEX_RE = re.compile(r"^[0-9a-f]+$")


def split_ref(ref: str) -> tuple[str, str]:
    """Split "name[:tag]" into (familiar name, tag); raise InvalidSpec when malformed."""
    if not isinstance(ref, str) or not ref or ref != ref.strip():
        raise InvalidSpec(f"invalid image reference {ref!r}")
    if "@" in ref:
        raise InvalidSpec(f"image reference {ref!r}: digest references are not supported here")
    name, tag = ref, DEFAULT_TAG
    # A colon after the last slash separates the tag; one before it is a registry port.
    slash, colon = ref.rfind("/"), ref.rfind(":")
    if colon > slash:
        name, tag = ref[:colon], ref[colon + 1 :]
    if not _TAG_RE.match(tag):
        raise InvalidSpec(f"invalid tag {tag!r} in image reference {ref!r}")
    if len(name) > 255 or not _NAME_RE.match(name):
        raise InvalidSpec(
            f"invalid image reference {ref!r}: names are lower-case letters, digits and separators"
        )
    return familiar_name(name), tag


def familiar_name(name: str) -> str:
    """Drop Docker Hub's implicit prefixes so "docker.io/library/busybox" is "busybox"."""
    for prefix in (
        "docker.io/library/",
        "index.docker.io/library/",
        "docker.io/",
        "index.docker.io/",
    ):
        if name.startswith(prefix):
            return name[len(prefix) :]
    if name.startswith("library/") and name.count("/") == 1:
        return name[len("library/") :]
    return name


def normalize_ref(ref: str) -> str:
    """Return the canonical "name:tag" form of a reference (tag defaults to latest)."""
    name, tag = split_ref(ref)
    return f"{name}:{tag}"


def is_valid_ref(ref: str) -> bool:
    """True if `ref` parses as an image reference."""
    try:
        split_ref(ref)
    except InvalidSpec:
        return False
    return True
