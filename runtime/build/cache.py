"""The build cache: step key (parent state + instruction + file checksums) -> resulting state."""

import hashlib
import json
import os
from pathlib import Path

from runtime.build.state import BuildState


def step_key(parent_key: str, instruction: str, extra: str = "") -> str:
    """The cache key of a step: a change to any input changes this key and every later one."""
    text = json.dumps([parent_key, instruction, extra])
    return hashlib.sha256(text.encode()).hexdigest()


class BuildCache:
    """One JSON file per step under `<root>/build-cache/`; entries are checked before use."""

    def __init__(self, config):
        self.dir = Path(config.root) / "build-cache"

    def get(self, key: str, store) -> BuildState | None:
        """The cached state for `key` if its layer blobs are still in the store."""
        try:
            data = json.loads((self.dir / f"{key}.json").read_text())
            state = BuildState.from_dict(data)
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None
        if not all(store.layout.blob_path(d["digest"]).is_file() for d in state.layers):
            return None  # pruned since: rebuild the step
        return state

    def put(self, key: str, state: BuildState) -> None:
        """Remember the state a step produced."""
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(state.to_dict()))
        os.replace(tmp, self.dir / f"{key}.json")

    def prune(self, store) -> int:
        """Drop entries whose layers are gone from the store; returns how many."""
        removed = 0
        if not self.dir.is_dir():
            return 0
        for entry in self.dir.glob("*.json"):
            if self.get(entry.stem, store) is None:
                entry.unlink(missing_ok=True)
                removed += 1
        return removed

    def clear(self, store, everything: bool = False) -> dict:
        """`docker builder prune`: remove the entries that hold a layer no image uses (every
        entry with `everything`) and those layers once no image or kept entry holds them.

        Returns {"entries": removed keys, "bytes": what the removed files took}."""
        removed, reclaimed = [], 0
        if not self.dir.is_dir():
            return {"entries": removed, "bytes": 0}
        with store.layout.locked():
            images = store.list()
            blobs = {d["digest"] for i in images for d in i.manifest.get("layers") or []}
            diff_ids = {d for i in images for d in i.layers}
            kept, doomed = set(), {}
            for entry in sorted(self.dir.glob("*.json")):
                try:
                    layers = BuildState.from_dict(json.loads(entry.read_text())).layers
                except (OSError, ValueError, KeyError, TypeError):
                    layers = []  # unreadable: nothing can use it
                else:
                    if not everything and all(d["digest"] in blobs for d in layers):
                        kept.update(d["digest"] for d in layers)
                        continue
                reclaimed += _size(entry)
                entry.unlink(missing_ok=True)
                removed.append(entry.stem)
                doomed.update((d["digest"], d.get("diff_id")) for d in layers)
            for digest, diff_id in doomed.items():
                if digest in blobs or digest in kept:
                    continue
                blob = store.layout.blob_path(digest)
                reclaimed += _size(blob)
                blob.unlink(missing_ok=True)
                if diff_id and diff_id not in diff_ids:
                    reclaimed += _size(store.layout.layer_path(diff_id))
                    store.layout.remove_layer(diff_id)
        return {"entries": removed, "bytes": reclaimed}


def _size(path: Path) -> int:
    """Bytes a file or directory tree takes (links not followed; 0 when gone)."""
    try:
        if not path.is_dir() or path.is_symlink():
            return path.lstat().st_size
    except OSError:
        return 0
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total
