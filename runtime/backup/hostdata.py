"""One host's share of a backup set: volumes and upper layers, frozen while restic reads them.

Containers that are running are frozen (cgroup freezer) for the copy, so a volume and a
writable layer are read as of one moment; the time each spent frozen is returned.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from runtime.backup.restic import BackupError, Repository
from runtime.container.paths import ContainerPaths
from runtime.errors import BerthError, InvalidSpec


def volume_path(name: str) -> str:
    """A volume's data, relative to the state root."""
    if not name or "/" in name or name in (".", ".."):
        raise InvalidSpec(f"invalid volume name {name!r}")
    return f"volumes/{name}/_data"


def upper_path(runtime_id: str) -> str:
    """A container's upper layer, relative to the state root."""
    if not runtime_id or not runtime_id.isalnum():
        raise InvalidSpec(f"invalid container id {runtime_id!r}")
    return f"containers/{runtime_id}/upper"


FREEZERS = 16  # cgroup writes and waits, not CPU: freezing 100 containers one by one is slow


@contextlib.contextmanager
def frozen(rt, runtime_ids: list[str]):
    """Freeze the running containers among `runtime_ids`; yields {id: seconds frozen}."""
    wanted = set(runtime_ids)
    running = [s["id"] for s in rt.list() if s["id"] in wanted and s.get("status") == "running"]
    since, frozen_for = {}, {}

    def freeze(cid):
        try:
            rt.pause(cid)
        except BerthError:  # it stopped or went away since the list: nothing to freeze
            return
        since[cid] = time.monotonic()

    def thaw(cid):
        with contextlib.suppress(Exception):
            rt.unpause(cid)
        frozen_for[cid] = round(time.monotonic() - since[cid], 3)

    with ThreadPoolExecutor(FREEZERS) as pool:
        try:
            list(pool.map(freeze, running))
            yield frozen_for
        finally:
            list(pool.map(thaw, list(since)))


def back_up(rt, repo: Repository, *, host: str, set_id: str, volumes: list[str], uppers: dict):
    """Snapshot `volumes` (names) and `uppers` ({key: runtime id}) of this host as one snapshot."""
    root = Path(rt.config.root)
    paths = []
    for name in volumes:
        rel = volume_path(name)
        (root / rel).mkdir(parents=True, exist_ok=True)
        paths.append(rel)
    upper_rel = {}
    for key, cid in uppers.items():
        rel = upper_path(cid)
        if (root / rel).is_dir():
            paths.append(rel)
            upper_rel[key] = rel
    if not paths:
        return {"snapshot": "", "volumes": {}, "uppers": {}, "frozen": {}, "bytes_added": 0}
    with frozen(rt, list(uppers.values())) as frozen_for:
        summary = repo.backup(
            root, paths, host=host, tags=[f"berth-host:{host}", f"berth-set:{set_id}"]
        )
    by_id = {cid: key for key, cid in uppers.items()}
    return {
        "snapshot": summary["snapshot_id"],
        "volumes": {name: volume_path(name) for name in volumes},
        "uppers": upper_rel,
        "frozen": {by_id[cid]: secs for cid, secs in frozen_for.items()},
        "bytes_added": summary.get("data_added", 0),
        "bytes_processed": summary.get("total_bytes_processed", 0),
        "files": summary.get("total_files_processed", 0),
    }


IMAGE_PATHS = ["images/oci-layout", "images/index.json", "images/blobs"]  # store layout files


def back_up_images(rt, repo: Repository, *, host: str, set_id: str) -> dict:
    """Snapshot this host's image store as it lies (an OCI image layout: index and blobs,
    tags kept) in a snapshot of its own, taken before any container is frozen; restorable
    with no registry. Blobs are content-addressed files that never change, so the next run
    reads only the new ones (restic's parent snapshot). The store's lock is held meanwhile:
    index and blobs are read as of one moment (pulls and builds wait to commit)."""
    images = rt.images.list()
    if not images:
        return {"snapshot": "", "count": 0, "bytes_added": 0}
    root = Path(rt.config.root)
    with rt.images.layout.locked():
        images = rt.images.list()
        summary = repo.backup(
            root,
            IMAGE_PATHS,
            host=host,
            tags=[f"berth-host:{host}", f"berth-set:{set_id}", "berth-images"],
        )
    return {
        "snapshot": summary["snapshot_id"],
        "layout": "images",
        "count": len(images),
        "ids": sorted(image.id for image in images),
        "bytes_added": summary.get("data_added", 0),
        "bytes_processed": summary.get("total_bytes_processed", 0),
    }


def restore_images(rt, repo: Repository, part: dict) -> list[str]:
    """Load the images of an image snapshot into this host's store; their ids. The snapshot's
    layout is restored into a scratch directory, written as one OCI archive by a store opened
    there, and loaded as any archive is (every blob checked, layers unpacked). Images the
    store has already are kept as they are."""
    from runtime.config import RuntimeConfig
    from runtime.images import ImageStore

    with staged(rt, repo, part["snapshot"], IMAGE_PATHS) as st:
        if not (st / "images" / "index.json").is_file():
            raise BackupError("the image snapshot holds no image store")
        saved = ImageStore(RuntimeConfig(root=st, run_root=st / "run", prefix="berthbk"))
        ids = [image.id for image in saved.list()]
        if not ids:
            return []
        archive = st / "images.oci.tar"
        saved.export_oci_archive(ids, archive)
        return sorted(image.id for image in rt.images.load_archive(archive, kind="oci"))


@contextlib.contextmanager
def staged(rt, repo: Repository, snapshot: str, rels: list[str]):
    """Restore the snapshot's `rels` in one restic run into a scratch directory on the state
    root's filesystem (so placing them is a rename); yields it, removes what is left."""
    scratch = Path(rt.config.root) / "tmp"
    scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = Path(tempfile.mkdtemp(prefix="restore-", dir=scratch))
    try:
        if rels:
            repo.restore(snapshot, rels, staging)
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def place(got: Path, dest: Path, *, merge: bool = False) -> None:
    """Move a restored directory's entries into `dest`.

    A volume's `dest` must be empty (or missing): nothing is overwritten. An upper layer is
    merged (`merge`): the runtime's create has already put its own few files there (mount
    points), and the backed-up layer wins where both have an entry.
    """
    if not merge and dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty; not overwriting it")
    if not got.is_dir():
        raise BackupError(f"the backup holds nothing for {dest}")
    dest.mkdir(parents=True, exist_ok=True)
    _move_entries(got, dest)


def _move_entries(src: Path, dest: Path) -> None:
    for entry in src.iterdir():
        target = dest / entry.name
        if (
            entry.is_dir()
            and not entry.is_symlink()
            and target.is_dir()
            and not target.is_symlink()
        ):
            _move_entries(entry, target)
            continue
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif os.path.lexists(target):
            target.unlink()
        os.rename(entry, target)
    _copy_meta(src, dest)


def _copy_meta(src: Path, dest: Path) -> None:
    """Owner, mode and extended attributes (overlay's opaque marks among them) of a directory."""
    st = src.stat()
    os.chown(dest, st.st_uid, st.st_gid)
    os.chmod(dest, st.st_mode & 0o7777)
    for name in os.listxattr(src):
        with contextlib.suppress(OSError):
            os.setxattr(dest, name, os.getxattr(src, name))


def upper_dir(rt, runtime_id: str) -> Path:
    """The upper layer directory of a container on this host."""
    return ContainerPaths(rt.config, runtime_id).upper
