"""User namespace ranges: the pool, one range per key kept for good, and the default's choice.

Split from runtime.container.userns (which re-exports these names); see its docstring.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os

from runtime.container.fsutil import read_json, write_json
from runtime.errors import InvalidSpec

DEFAULT_POOL = (100000, 65536 * 30000)  # ends below 2**31
RANGE_SIZE = 65536
SUBID_USER = "berth"
LABEL = "io.berth.userns"
DEFAULT_KEY = "default"
# Why a container keeps the host's user namespace when the spec does not say: these options
# are root on the host anyway (each needs its own permission in the platform).
_HOST_ONLY = "privileged mode, a host namespace or the host network"


def _parse_range(text: str) -> tuple[int, int]:
    first, _, count = text.strip().partition(":")
    try:
        start, size = int(first), int(count)
    except ValueError:
        raise InvalidSpec(f"user namespace range must be FIRST:COUNT, got {text!r}") from None
    if start < 1 or size < 1:
        raise InvalidSpec(f"user namespace range must map to non-root host ids, got {text!r}")
    return start, size


def pool(config, environ=os.environ, subuid: str = "/etc/subuid") -> tuple[int, int]:
    """The host ids ranges are cut from: config extra, env, /etc/subuid `berth`, default."""
    text = config.extra.get("userns_range") or environ.get("BERTH_USERNS_RANGE")
    if text:
        return _parse_range(str(text))
    with contextlib.suppress(OSError), open(subuid) as f:
        for line in f:
            name, _, rest = line.strip().partition(":")
            if name == SUBID_USER and rest:
                return _parse_range(rest)
    return DEFAULT_POOL


def default_mode(config, environ=os.environ) -> str:
    """What a spec that does not name the user namespace gets: 'private' unless turned off."""
    mode = config.extra.get("userns_default") or environ.get("BERTH_USERNS_DEFAULT") or "private"
    if mode not in ("private", "host"):
        raise InvalidSpec(f"BERTH_USERNS_DEFAULT must be private or host, got {mode!r}")
    return mode


def legacy_range(config) -> tuple[int, int]:
    """The first range of the pool: key "default", and every opt-in container made before
    ranges were kept in records (they all used it)."""
    first, count = pool(config)
    return first, min(RANGE_SIZE, count)


def allocate(config, key: str) -> tuple[int, int]:
    """The range of `key` (first, count), given out once from the pool and kept for good.

    "default" always has the pool's first range; a pool with room for one range only is
    shared by every key.
    """
    first, count = pool(config)
    size = min(RANGE_SIZE, count)
    slots = count // size
    if key == DEFAULT_KEY or slots == 1:
        return first, size
    config.root.mkdir(parents=True, exist_ok=True)
    lock = os.open(config.root / "userns.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        table = read_json(config.root / "userns.json", {}) or {}
        index = table.get(key)
        if index is None:
            used = set(table.values())
            index = next((i for i in range(1, slots) if i not in used), None)
            if index is None:
                raise InvalidSpec(
                    f"no free user namespace range: all {slots} ranges of {size} ids in "
                    f"{first}:{count} are taken (widen BERTH_USERNS_RANGE)"
                )
            table[key] = index
            write_json(config.root / "userns.json", table)
    finally:
        os.close(lock)
    return first + index * size, size


def claim(config, key: str, first: int) -> None:
    """Give `key` the range starting at host id `first` if it has none here yet and that
    range is free (a container restored from another host keeps the ids it had there, and
    so do the files of its team's volumes copied with it). Otherwise nothing changes: the
    restore then maps the checkpoint to the range `key` has here (criu_userns.remap)."""
    start, count = pool(config)
    size = min(RANGE_SIZE, count)
    index, rest = divmod(first - start, size)
    if key == DEFAULT_KEY or count // size == 1 or rest or not 0 < index < count // size:
        return
    config.root.mkdir(parents=True, exist_ok=True)
    lock = os.open(config.root / "userns.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        table = read_json(config.root / "userns.json", {}) or {}
        if key not in table and index not in table.values():
            table[key] = index
            write_json(config.root / "userns.json", table)
    finally:
        os.close(lock)


def _host_only(spec) -> bool:
    if spec.privileged or spec.network.mode == "host":
        return True
    return any(v == "host" for k, v in spec.namespaces.items() if k != "user")


def _joined(spec) -> list[str]:
    """References of the containers whose namespaces the spec joins."""
    refs = [
        v.partition(":")[2]
        for k, v in spec.namespaces.items()
        if k != "user" and v.startswith("container:")
    ]
    if spec.network.mode.startswith("container:"):
        refs.append(spec.network.mode.partition(":")[2])
    return refs


def resolve(rt, spec) -> tuple[str, dict | None]:
    """The user namespace of a new container: ('host', None) or ('private', its range).

    Absent from the spec: private by default; the host's for what is root on the host anyway;
    a joiner's is the joined container's. The range dict is kept in the container's record.
    """
    asked = spec.namespaces.get("user")
    if asked == "host":
        return "host", None
    if asked is None and (_host_only(spec) or default_mode(rt.config) == "host"):
        return "host", None
    if _host_only(spec):
        raise InvalidSpec(f"a private user namespace cannot go with {_HOST_ONLY}")
    targets = {}
    for ref in _joined(spec):
        cid = rt.store.resolve(ref)
        targets[cid] = rt.store.read_record(cid)
    if targets:
        shared = {
            cid: rec.get("userns") if rec["spec"]["namespaces"].get("user") == "private" else None
            for cid, rec in targets.items()
        }
        if len({json.dumps(v, sort_keys=True) for v in shared.values()}) > 1:
            raise InvalidSpec("the containers joined do not share one user namespace")
        cid, info = next(iter(shared.items()))
        name = targets[cid]["name"]
        if info is None and targets[cid]["spec"]["namespaces"].get("user") == "private":
            first, count = legacy_range(rt.config)  # made before ranges were kept
            info = {"first": first, "count": count, "key": DEFAULT_KEY}
        if info is None:
            if asked == "private":
                raise InvalidSpec(
                    f"a private user namespace cannot join container {name}: "
                    "it runs in the host's user namespace"
                )
            return "host", None
        return "private", {k: info[k] for k in ("first", "count", "key")} | {"join": cid}
    key = spec.labels.get(LABEL) or DEFAULT_KEY
    first, count = allocate(rt.config, key)
    return "private", {"first": first, "count": count, "key": key}
