"""A stopped container's root filesystem read from its overlay layers on disk (no mount):
whiteouts, opaque directories and links inside the layers resolved as overlayfs would."""

import contextlib
import os
import stat

from runtime.errors import InvalidSpec, NotFound

OPAQUE = ("trusted.overlay.opaque", "user.overlay.opaque")


def lstat_or_none(path: str):
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def is_whiteout(st) -> bool:
    return st is not None and stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str) -> bool:
    for name in OPAQUE:
        with contextlib.suppress(OSError):
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
    return False


def merged(layers: list[str], rel: str = ""):
    """(relative path, layer directory, lstat) of the merged tree under `rel`, parents first."""
    holders = [layer for layer in layers if is_dir(os.path.join(layer, rel))]
    names: dict[str, None] = {}
    for layer in holders:
        with contextlib.suppress(OSError):
            names.update(dict.fromkeys(sorted(os.listdir(os.path.join(layer, rel)))))
        if is_opaque(os.path.join(layer, rel)):
            break
    for name in sorted(names):
        child = os.path.join(rel, name)
        for index, layer in enumerate(holders):
            st = lstat_or_none(os.path.join(layer, child))
            if st is None:
                if is_opaque(os.path.join(layer, rel)):
                    break
                continue
            if is_whiteout(st):
                break
            yield child, layer, st
            if stat.S_ISDIR(st.st_mode):
                yield from merged(holders[index:], child)
            break


def holders_of(layers: list[str], rel: str) -> list[str]:
    """The layers in which `rel` is a directory that shows, top first (cut below an opaque one)."""
    found = []
    for layer in layers:
        full = os.path.join(layer, rel)
        st = lstat_or_none(full)
        if st is None:
            continue
        if not stat.S_ISDIR(st.st_mode):
            break  # a file or whiteout here hides the directories below
        found.append(layer)
        if rel and is_opaque(full):
            break
    return found


def layered_entry(layers: list[str], path: str) -> tuple[list[str], str, object]:
    """(holders of its parent, its path on disk, lstat) of `path` in the merged layers of a
    stopped container; links in the middle of the path are resolved inside the layers."""
    parts = [p for p in path.split("/") if p and p != "."]
    rel, links = "", 0
    holders = holders_of(layers, "")
    found = (holders, holders[0] if holders else layers[0], os.lstat(layers[0]))
    while parts:
        name = parts.pop(0)
        if name == "..":
            rel = os.path.dirname(rel)
            holders = holders_of(layers, rel)
            found = (
                holders,
                os.path.join(holders[0], rel),
                os.lstat(os.path.join(holders[0], rel)),
            )
            continue
        child = os.path.join(rel, name)
        hit = None
        for layer in holders:
            st = lstat_or_none(os.path.join(layer, child))
            if st is not None:
                hit = None if is_whiteout(st) else (layer, st)
                break
        if hit is None:
            raise NotFound(f"Could not find the file {path} in container")
        layer, st = hit
        if stat.S_ISLNK(st.st_mode) and parts:
            links += 1
            if links > 40:
                raise InvalidSpec(f"too many symbolic links resolving {path!r}")
            target = os.readlink(os.path.join(layer, child))
            rel = "" if target.startswith("/") else rel
            parts = [p for p in target.split("/") if p and p != "."] + parts
            holders = holders_of(layers, rel)
            continue
        if parts and not stat.S_ISDIR(st.st_mode):
            raise NotFound(f"Could not find the file {path} in container")
        found = (holders, os.path.join(layer, child), st)
        rel = child
        holders = holders_of(layers, rel) if stat.S_ISDIR(st.st_mode) else holders
    return found


def rel_of(layers: list[str], full: str) -> str:
    for layer in layers:
        if full == layer or full.startswith(layer.rstrip("/") + "/"):
            return os.path.relpath(full, layer) if full != layer else ""
    return ""


def is_dir(path: str) -> bool:
    st = lstat_or_none(path)
    return st is not None and stat.S_ISDIR(st.st_mode)
