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
