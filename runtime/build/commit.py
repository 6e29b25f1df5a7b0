"""`docker commit`, `docker history` and `docker image prune` on top of the store and runtime."""

import contextlib
import os
import stat
from pathlib import Path

from runtime.build.layers import diff_from_upper, finish_layer
from runtime.build.state import BuildState, materialize
from runtime.errors import BerthError, InvalidState
from runtime.images import changes as image_changes
from runtime.images import reference


def commit(
    rt, container: str, ref: str | None = None, *, changes=(), message="", author="", pause=True
):
    """Make an image of a container's changes (its overlay upper dir) on top of its image."""
    tag = reference.normalize_ref(ref) if ref else None
    cid = rt.store.resolve(container)
    rec = rt.store.read_record(cid)
    store = rt.images
    state = BuildState.of_image(store, store.resolve(rec["image_id"])).copy()
    status = rt.state(cid)["status"]
    paused = False
    if pause and status == "running":
        # Docker pauses the container so the layer is one consistent moment.
        rt.pause(cid)
        paused = True
    scratch = Path(store.layout.scratch())
    try:
        tar = scratch / "commit.tar"
        try:
            diff_from_upper(rt.store.paths(cid).upper, tar)
        finally:
            if paused:
                rt.unpause(cid)
        blob = finish_layer(tar, scratch)
        tar.unlink()
        state.add_layer(blob)
        image_changes.apply_changes(state.inner, list(changes))
        if author:
            state.config["author"] = author
        state.add_history(f"berth commit {rec['name']}", empty=False, comment=message)
        image, _ = materialize(store, state, scratch, {blob.digest: blob.path}, tag)
    finally:
        store.layout.discard(scratch)
    return image


def history(store, ref: str) -> list[dict]:
    """`docker history`: one row per history entry, newest first, with layer sizes."""
    image = store.resolve(ref)
    descs = list(zip(image.manifest.get("layers") or [], image.layers, strict=False))
    rows = []
    layer_index = 0
    for entry in image.config.get("history") or []:
        size = 0
        empty = bool(entry.get("empty_layer"))
        if not empty and layer_index < len(descs):
            size = _layer_size(store, descs[layer_index][1])
            layer_index += 1
        rows.append(
            {
                "id": None,
                "created": entry.get("created", ""),
                "created_by": entry.get("created_by", ""),
                "comment": entry.get("comment", ""),
                "size": size,
                "empty_layer": empty,
            }
        )
    if not rows:
        rows = [
            {
                "id": None,
                "created": image.created,
                "created_by": "",
                "comment": "",
                "size": _layer_size(store, d),
                "empty_layer": False,
            }
            for _, d in descs
        ]
    rows.reverse()
    if rows:
        rows[0]["id"] = image.id
    return rows


def _layer_size(store, diff_id: str) -> int:
    """Bytes of the layer's regular files, each file counted once however many hard links
    name it (busybox is one 1 MB binary behind some 400 links)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    root = store.layout.layer_path(diff_id)
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(dirpath, name))
                if not stat.S_ISREG(st.st_mode):
                    continue
                if st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                total += st.st_size
    return total


def prune(rt, all_images: bool = False, cache=None) -> dict:
    """Remove dangling images (or every unused one with `all_images`) and stale build cache."""
    store = rt.images
    try:
        used = {c.get("image_id") for c in rt.list()}
    except BerthError as exc:
        raise InvalidState(f"cannot list containers to find unused images: {exc}") from exc
    removed = list(store.prune(used))
    if all_images:
        for image in store.list():
            if image.id not in used:
                removed.extend(store.remove(image.id, force=True))
    cache_removed = cache.prune(store) if cache is not None else 0
    return {"removed": removed, "cache_entries": cache_removed}
