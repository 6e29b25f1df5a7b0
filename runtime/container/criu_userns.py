"""The user namespace a CRIU checkpoint recorded (userns-N.img), read and moved to a range.

CRIU writes the restored user namespace's uid_map and gid_map from this image. A restore on
another host (import, migration) gives the container that host's range for its key, which
may differ from the one it was dumped with: the image is rewritten to the restoring
container's range first, so the restored map is always the record's (files in the upper
layer are stored with the image's own ids through idmapped mounts, so they need no change).

The image: two magic numbers, then one entry (u32 length, protobuf UsernsEntry: repeated
uid_map = 1 and gid_map = 2, each an extent {first = 1, lower_first = 2, count = 3}).
"""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

from runtime.errors import InvalidSpec

_HEADER = 8  # the common and the image's magic numbers


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise InvalidSpec("the checkpoint's user namespace image is damaged")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _put_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _fields(data: bytes):
    """(number, wire type, value) of each field of a protobuf message."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
        elif wire == 2:
            size, at = _varint(data, at)
            value, at = data[at : at + size], at + size
        else:
            raise InvalidSpec("the checkpoint's user namespace image has an unknown field")
        yield number, wire, value


def image(images: Path) -> Path | None:
    """The checkpoint's user namespace image (None: the tree ran in the host's)."""
    found = sorted(Path(images).glob("userns-*.img"))
    return found[0] if found else None


def read_maps(path: Path) -> dict[str, list[tuple[int, int, int]]]:
    """{"uid": [(first, lower_first, count)], "gid": [...]} of a userns image."""
    data = path.read_bytes()
    if len(data) < _HEADER + 4:
        raise InvalidSpec("the checkpoint's user namespace image is damaged")
    (size,) = struct.unpack_from("<I", data, _HEADER)
    maps: dict[str, list[tuple[int, int, int]]] = {"uid": [], "gid": []}
    for number, wire, value in _fields(data[_HEADER + 4 : _HEADER + 4 + size]):
        if number in (1, 2) and wire == 2:
            extent = {n: v for n, w, v in _fields(value) if w == 0}
            key = "uid" if number == 1 else "gid"
            maps[key].append((extent.get(1, 0), extent.get(2, 0), extent.get(3, 0)))
    return maps


def _encode(maps: dict[str, list[tuple[int, int, int]]]) -> bytes:
    out = bytearray()
    for number, key in ((1, "uid"), (2, "gid")):
        for first, lower, count in maps[key]:
            extent = b"".join(
                bytes([n << 3]) + _put_varint(v) for n, v in ((1, first), (2, lower), (3, count))
            )
            out += bytes([number << 3 | 2]) + _put_varint(len(extent)) + extent
    return bytes(out)


def remap(images: Path, first: int, count: int) -> dict | None:
    """Make the image map root inside to host `first` (`count` ids); returns the dump's range
    ({"first", "count"}) or None when the checkpoint has no user namespace of its own."""
    path = image(images)
    if path is None:
        return None
    maps = read_maps(path)
    old = {(e[0], e[1], e[2]) for key in ("uid", "gid") for e in maps[key]}
    if len(old) != 1 or next(iter(old))[0] != 0:
        raise InvalidSpec(f"the checkpoint's user namespace maps are not one range: {maps}")
    ((_, lower, size),) = old
    if size != count:
        raise InvalidSpec(
            f"the checkpoint's user namespace maps {size} ids, this container's range {count}"
        )
    if lower != first:
        new = {key: [(0, first, count)] for key in ("uid", "gid")}
        body = _encode(new)
        data = path.read_bytes()[:_HEADER] + struct.pack("<I", len(body)) + body
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(data)
        os.replace(partial, path)
    return {"first": lower, "count": size}


def move_volume(path: str, old_first: int, new_first: int, count: int) -> bool:
    """Move a named volume's files from the range a checkpoint was dumped with to this
    container's (a migration to a host where the team has another range: the volume was
    copied with the source's owners). Only a volume whose root belongs to the old range's
    root is moved; its root directory goes last, so a move killed half-way resumes. Returns
    whether it moved anything."""
    st = os.lstat(path)
    if st.st_uid != old_first or old_first == new_first:
        return False

    def shift(item: str) -> None:
        info = os.lstat(item)
        ids = []
        for value in (info.st_uid, info.st_gid):
            ids.append(value - old_first + new_first if 0 <= value - old_first < count else value)
        if ids != [info.st_uid, info.st_gid]:
            os.chown(item, *ids, follow_symlinks=False)
            if stat.S_ISREG(info.st_mode) and info.st_mode & (stat.S_ISUID | stat.S_ISGID):
                os.chmod(item, stat.S_IMODE(info.st_mode))  # chown cleared them

    for dirpath, dirnames, filenames in os.walk(path, topdown=False):
        for name in dirnames + filenames:
            shift(os.path.join(dirpath, name))
    shift(path)
    return True
