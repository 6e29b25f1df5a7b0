"""A set's manifest: what it holds, and the SHA-256 of every file, checked before any restore."""

import hashlib
import json
import os
from pathlib import Path

from config.errors import InvalidRequest

NAME = "manifest.json"
FORMAT = 1
CHUNK = 1024 * 1024


def sha256(path: Path) -> str:
    """The hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _files(set_dir: Path) -> list[Path]:
    return sorted(p for p in set_dir.rglob("*") if p.is_file() and p.name != NAME)


def write(set_dir: Path, data: dict) -> dict:
    """Write the manifest with the checksums of every other file of the set (synced to disk)."""
    data = dict(data, format=FORMAT)
    data["files"] = {str(p.relative_to(set_dir)): sha256(p) for p in _files(set_dir)}
    target = set_dir / NAME
    with open(target, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    return data


class SetInvalid(InvalidRequest):
    """A backup set that is incomplete or altered: the message names the file."""

    code = "backup_set_invalid"


def verify(set_dir: Path) -> dict:
    """The manifest of a complete, unaltered set; SetInvalid naming the first problem."""
    set_dir = Path(set_dir)
    path = set_dir / NAME
    if not path.is_file():
        raise SetInvalid(f"{set_dir} is not a backup set: it has no {NAME}")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise SetInvalid(f"{path} cannot be read: {err}") from None
    if data.get("format") != FORMAT or not isinstance(data.get("files"), dict):
        raise SetInvalid(f"{path} is not a manifest this version of Berth reads")
    for rel, wanted in sorted(data["files"].items()):
        file = set_dir / rel
        if not file.is_file():
            raise SetInvalid(f"the backup set is missing {rel}")
        if sha256(file) != wanted:
            raise SetInvalid(f"{rel} does not match its checksum in the manifest (altered)")
    listed = set(data["files"])
    for extra in _files(set_dir):
        if str(extra.relative_to(set_dir)) not in listed:
            raise SetInvalid(f"{extra.relative_to(set_dir)} is not in the manifest")
    return data
