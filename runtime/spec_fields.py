"""Field checks shared by the container spec's parts: names, ids, sizes, paths and lists."""

from __future__ import annotations

import re
from dataclasses import fields
from typing import Any

from runtime.errors import InvalidSpec

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
# A full container id: a reference of this form is an id, never a name (see is_full_id).
FULL_ID_RE = re.compile(r"^[0-9a-f]{64}$")


def is_full_id(ref: Any) -> bool:
    """Whether `ref` is written as a full 64-hex container id (then it is looked up only as one)."""
    return isinstance(ref, str) and bool(FULL_ID_RE.match(ref))


def check_container_name(name: Any) -> None:
    """InvalidSpec unless `name` is a valid container name that cannot pass for an id."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidSpec(
            f"invalid container name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
    if is_full_id(name):
        # A name that reads as an id would let a reference by id land on a look-alike.
        raise InvalidSpec(f"invalid container name {name!r}: a name cannot look like a full id")


HOSTNAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")
MAC_RE = re.compile(r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$")
ENV_KEY_RE = re.compile(r"^[^=\0]+$")


_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(value: Any, what: str = "size") -> int:
    """Parse Docker's sizes: 64m, 1g, 512k, or a plain number of bytes."""
    if isinstance(value, bool):
        raise InvalidSpec(f"invalid {what}: {value!r}")
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)b?\s*", str(value), re.IGNORECASE)
    if not match:
        raise InvalidSpec(
            f"invalid {what}: {value!r} (use a number with an optional unit b, k, m, g)"
        )
    number, unit = match.groups()
    return int(float(number) * _SIZE_UNITS[unit.lower()])


def check_keys(cls, data: Any, where: str) -> dict:
    if not isinstance(data, dict):
        raise InvalidSpec(f"{where} must be an object, not {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidSpec(f"unknown field(s) in {where}: {', '.join(unknown)}")
    return data


def str_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise InvalidSpec(f"{where} must be a list of strings")
    for item in value:
        if not isinstance(item, str):
            raise InvalidSpec(f"{where} must be a list of strings")
    return list(value)


def opt_int(value: Any, where: str, minimum: int | None = None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSpec(f"{where} must be an integer")
    if minimum is not None and value < minimum:
        raise InvalidSpec(f"{where} must be at least {minimum}")
    return value


def check_container_path(path: Any, where: str) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidSpec(f"{where} must be an absolute path, got {path!r}")
    if "\0" in path or any(part == ".." for part in path.split("/")):
        raise InvalidSpec(f"{where} must not contain '..' or NUL: {path!r}")
    return path


def bool_field(data: dict, key: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise InvalidSpec(f"{key} must be true or false, got {value!r}")
    return value
