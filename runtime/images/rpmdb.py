"""rpm's sqlite package database (`rpmdb.sqlite`, RHEL 9, Fedora, Rocky, Alma), read without rpm.

The table `Packages (hnum INTEGER PRIMARY KEY, blob BLOB)` holds one rpm header per installed
package. A header blob, as rpm stores it (no magic): two big-endian int32 (index entries `il`,
data bytes `dl`), `il` entries of four int32 (tag, type, offset, count), then the data store.
Only the few tags an inventory needs are read, every offset bounds-checked: the file comes
from an image and is not trusted. The database is opened read-only and immutable (no journal
or lock file is made in the image's layer).
"""

from __future__ import annotations

import sqlite3
import struct
import urllib.parse
from pathlib import Path

NAME, VERSION, RELEASE, EPOCH, ARCH, SOURCERPM = 1000, 1001, 1002, 1003, 1022, 1044
INT32, STRING, I18NSTRING = 4, 6, 9
MAX_ENTRIES = 0x10000  # rpm's own limits on a header
MAX_DATA = 256 * 1024 * 1024
MAX_PACKAGES = 100_000
PSEUDO = ("gpg-pubkey",)  # signing keys rpm keeps as packages


class RpmError(ValueError):
    """A header or database that is not what rpm writes."""


def parse_header(blob: bytes) -> dict[int, object]:
    """The wanted tags of one header blob: {tag: str or int}."""
    if len(blob) < 8:
        raise RpmError("a header shorter than its preamble")
    il, dl = struct.unpack_from(">ii", blob, 0)
    if not (0 < il <= MAX_ENTRIES and 0 <= dl <= MAX_DATA):
        raise RpmError(f"a header with {il} entries and {dl} data bytes")
    start = 8 + 16 * il
    if start + dl > len(blob):
        raise RpmError("a header longer than its blob")
    data = blob[start : start + dl]
    wanted = {NAME, VERSION, RELEASE, EPOCH, ARCH, SOURCERPM}
    out: dict[int, object] = {}
    for i in range(il):
        tag, kind, offset, count = struct.unpack_from(">iiii", blob, 8 + 16 * i)
        if tag not in wanted or count < 1 or not 0 <= offset < dl:
            continue
        if kind == INT32 and offset + 4 <= dl:
            out[tag] = struct.unpack_from(">i", data, offset)[0]
        elif kind in (STRING, I18NSTRING):
            end = data.find(b"\0", offset)
            if end < 0:
                raise RpmError(f"tag {tag}: a string without its end")
            out[tag] = data[offset:end].decode("utf-8", "replace")
    return out


def source_name(sourcerpm: str) -> str:
    """`bash-5.1.8-6.el9.src.rpm` -> `bash` (name-version-release.src.rpm)."""
    base = sourcerpm.removesuffix(".rpm").removesuffix(".src").removesuffix(".nosrc")
    parts = base.rsplit("-", 2)
    return parts[0] if len(parts) == 3 else ""


def evr(tags: dict) -> str:
    """rpm's version string: [epoch:]version-release."""
    version = f"{tags.get(VERSION, '')}-{tags[RELEASE]}" if RELEASE in tags else tags[VERSION]
    return f"{tags[EPOCH]}:{version}" if tags.get(EPOCH) else version


def read_sqlite(path: Path) -> list[dict]:
    """The installed packages of an rpmdb.sqlite file: name, version, source, arch."""
    uri = f"file:{urllib.parse.quote(str(path))}?mode=ro&immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as err:
        raise RpmError(f"rpmdb.sqlite cannot be opened: {err}") from None
    try:
        conn.execute("PRAGMA trusted_schema = OFF")
        rows = conn.execute("SELECT blob FROM Packages ORDER BY hnum LIMIT ?", (MAX_PACKAGES + 1,))
        blobs = [row[0] for row in rows]
    except sqlite3.Error as err:
        raise RpmError(f"rpmdb.sqlite cannot be read: {err}") from None
    finally:
        conn.close()
    if len(blobs) > MAX_PACKAGES:
        raise RpmError(f"rpmdb.sqlite lists more than {MAX_PACKAGES} packages")
    packages = []
    for blob in blobs:
        if not isinstance(blob, bytes):
            raise RpmError("a Packages row without a header blob")
        tags = parse_header(blob)
        if NAME not in tags or VERSION not in tags:
            raise RpmError("a header without a name or version")
        if tags[NAME] in PSEUDO:
            continue
        version = evr(tags)
        source = source_name(str(tags.get(SOURCERPM, ""))) or tags[NAME]
        packages.append(
            {
                "name": tags[NAME],
                "version": version,
                "source": source,
                "source_version": version,
                "arch": str(tags.get(ARCH, "")),
            }
        )
    return packages


def make_header(tags: dict[int, object]) -> bytes:
    """A header blob as rpm writes it (strings and int32 only): for tests and fixtures."""
    entries, data = [], b""
    for tag, value in tags.items():
        if isinstance(value, int):
            data += b"\0" * (-len(data) % 4)  # int32 data is aligned
            entries.append(struct.pack(">iiii", tag, INT32, len(data), 1))
            data += struct.pack(">i", value)
        else:
            entries.append(struct.pack(">iiii", tag, STRING, len(data), 1))
            data += str(value).encode() + b"\0"
    return struct.pack(">ii", len(entries), len(data)) + b"".join(entries) + data
