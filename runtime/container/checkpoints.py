"""A container's checkpoints: CRIU images plus meta.json under <container dir>/checkpoints/NAME.

A checkpoint is made in NAME.partial and renamed when whole, so a dump killed half-way
never looks like a checkpoint (and the next create of that name clears it). A checkpoint of a
pre-copy migration also has NAME.pre/pre-N: the pre-dumps whose pages its images refer to
(CRIU's images/parent symlink); it goes with the checkpoint.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
from pathlib import Path

from runtime.container import criu
from runtime.container.paths import ContainerPaths
from runtime.errors import Conflict, InvalidSpec, NotFound

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def root(paths: ContainerPaths) -> Path:
    """Directory of the container's checkpoints."""
    return paths.dir / "checkpoints"


def check_name(name: str) -> None:
    """InvalidSpec unless `name` is a valid checkpoint name."""
    if not isinstance(name, str) or not _NAME.match(name) or name.endswith((".partial", ".pre")):
        raise InvalidSpec(f"invalid checkpoint name {name!r}: use [A-Za-z0-9][A-Za-z0-9_.-]*")


def path(paths: ContainerPaths, name: str) -> Path:
    """Where checkpoint `name` lives (NotFound if it does not exist)."""
    check_name(name)
    found = root(paths) / name
    if not (found / "meta.json").exists():
        raise NotFound(f"no checkpoint {name} of container {paths.cid[:12]}")
    return found


def pre_dir(paths: ContainerPaths, name: str) -> Path:
    """Where the pre-dumps of checkpoint `name` (made while the container ran) go."""
    check_name(name)
    return root(paths) / f"{name}.pre"


def read_meta(where: Path) -> dict:
    """The checkpoint's meta.json."""
    return json.loads((where / "meta.json").read_text())


def begin(paths: ContainerPaths, name: str) -> Path:
    """An empty NAME.partial directory for a new checkpoint (Conflict if NAME exists)."""
    check_name(name)
    if (root(paths) / name).exists():
        raise Conflict(f"checkpoint {name} already exists for this container")
    partial = root(paths) / f"{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True, mode=0o700)
    (partial / "images").mkdir(mode=0o700)
    return partial


def finish(partial: Path, meta: dict) -> Path:
    """Write meta.json and make the checkpoint visible under its name."""
    (partial / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    final = partial.with_name(partial.name.removesuffix(".partial"))
    os.rename(partial, final)
    return final


def describe(rec: dict, pid: int, name: str, *, leave_running: bool, tcp: bool) -> dict:
    """What a restore needs besides the images: stdio keys, external mounts, network."""
    return {
        "name": name,
        "container": rec["id"],
        "arch": platform.machine(),
        "leave_running": leave_running,
        "tcp_established": tcp,
        "stdio": [criu.fd_key(pid, fd) for fd in (0, 1, 2)],
        "mounts": criu.external_mounts(pid),
    }


def listing(paths: ContainerPaths) -> list[dict]:
    """Every finished checkpoint of the container, oldest first."""
    found = []
    try:
        entries = list(os.scandir(root(paths)))
    except FileNotFoundError:
        return []
    for entry in entries:
        if entry.name.endswith((".partial", ".pre")):
            continue
        try:
            meta = read_meta(Path(entry.path))
        except (OSError, ValueError):
            continue
        found.append({"name": entry.name, "created": meta.get("created", "")})
    return sorted(found, key=lambda c: c["created"])


def remove(paths: ContainerPaths, name: str) -> None:
    """Delete checkpoint `name` and its pre-dumps (NotFound if it does not exist)."""
    shutil.rmtree(path(paths, name))
    shutil.rmtree(pre_dir(paths, name), ignore_errors=True)


def clear_partials(paths: ContainerPaths, keep: str | None = None) -> None:
    """Remove checkpoints a killed dump left half-made (but the pre-dumps of `keep`)."""
    for partial in root(paths).glob("*.partial"):
        shutil.rmtree(partial, ignore_errors=True)
    for pre in root(paths).glob("*.pre"):
        if pre.name != f"{keep}.pre" and not (pre.with_suffix("") / "meta.json").exists():
            shutil.rmtree(pre, ignore_errors=True)
