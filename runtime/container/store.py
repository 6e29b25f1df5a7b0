"""Persistent container records: config, state and name reservations under config.root."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import shutil
import threading
import time
from pathlib import Path

from runtime.config import RuntimeConfig
from runtime.container.fsutil import alive, read_json, write_json
from runtime.container.index import ContainerIndex
from runtime.container.paths import ContainerPaths
from runtime.errors import Conflict, NotFound

# Threads still deleting removed containers' files (see ContainerStore.remove).
_CLEANUPS: list[threading.Thread] = []
_CLEANUPS_LOCK = threading.Lock()


def delete_tree(path: Path, tries: int = 5) -> None:
    """Delete a directory tree, trying again while it still exists: a process that exits at the
    same moment (the monitor writing its exit record) can add a file between rmtree's listing
    and its last rmdir, which then fails with ENOTEMPTY and would leave the tree behind."""
    for attempt in range(tries):
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.lexists(path):
            return
        time.sleep(0.05 * (attempt + 1))


def delete_trees(paths: list[Path]) -> None:
    """delete_tree for each of `paths` (a removed container's two directories)."""
    for path in paths:
        delete_tree(path)


def now_iso() -> str:
    """RFC 3339 UTC time with nanoseconds (the format logs and state use)."""
    ns = time.time_ns()
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000))
        + f".{ns % 1_000_000_000:09d}Z"
    )


class _StorePaths(ContainerPaths):
    """ContainerPaths whose directories are computed once per object (store.paths fills them)."""

    @functools.cached_property
    def dir(self) -> Path:
        """Persistent directory (config, state, log, upper layer)."""
        return self.config.containers_dir / self.cid

    @functools.cached_property
    def run_dir(self) -> Path:
        """Runtime directory (pids, FIFO, socket, /etc files); gone after a reboot."""
        return self.config.run_containers_dir / self.cid


class ContainerStore:
    """Records on disk: containers/<id>/config.json (fixed) and state.json (changes)."""

    def __init__(self, config: RuntimeConfig):
        self.config = config
        self.names_dir = config.root / "names"
        self.trash_dir = config.root / "trash"  # removed containers' files, being deleted
        self.run_trash_dir = config.run_root / "trash"  # and their runtime files (tmpfs)
        # Every record and state file, summarized in one SQLite file: list() reads that
        # instead of each container's files (runtime/container/index.py).
        self.index = ContainerIndex(config.containers_dir)
        self._containers_dir = config.containers_dir
        self._run_dir = config.run_containers_dir

    now = staticmethod(now_iso)

    def paths(self, cid: str) -> ContainerPaths:
        """The paths of container `cid` (its two directories joined once: list() asks for
        several files of every container, and each pathlib join costs microseconds)."""
        paths = _StorePaths(self.config, cid)
        paths.__dict__["dir"] = self._containers_dir / cid
        paths.__dict__["run_dir"] = self._run_dir / cid
        return paths

    def new_id(self) -> str:
        """A fresh 64-hex-digit container id."""
        # os.urandom, not secrets: the same kernel source, without importing hmac and hashlib.
        return os.urandom(32).hex()

    def ids(self) -> list[str]:
        """Ids of every container on disk."""
        try:
            return sorted(
                e.name
                for e in os.scandir(self.config.containers_dir)
                if e.is_dir() and not e.name.startswith(".")
            )
        except FileNotFoundError:
            return []

    @staticmethod
    def check_name(name: str) -> None:
        """InvalidSpec unless `name` is a valid container name."""
        from runtime.spec import check_container_name  # not at import: `ps` never needs spec

        check_container_name(name)

    def reserve_name(self, name: str, cid: str) -> None:
        """Claim `name` for `cid` atomically; Conflict if another container holds it."""
        self.check_name(name)
        self.names_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.names_dir / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            owner = self.name_owner(name) or "?"
            raise Conflict(
                f'the container name "/{name}" is already in use by container "{owner}"; '
                "remove (or rename) that container to be able to reuse that name"
            ) from None
        try:
            os.write(fd, cid.encode())
        finally:
            os.close(fd)

    def name_owner(self, name: str) -> str | None:
        """Id of the container holding `name`, None if the name is free."""
        try:
            return (self.names_dir / name).read_text().strip()
        except (FileNotFoundError, IsADirectoryError):
            return None

    def publish_record(self, rec: dict) -> None:
        """Make a new container's directory appear with its record in one step (a rename).

        A directory under containers/ therefore always holds a record: a create killed at
        any point leaves either nothing or a record that names its (dead) creator.
        """
        final = self.paths(rec["id"]).dir
        tmp = self.config.containers_dir / f".new-{rec['id']}"
        tmp.mkdir(parents=True, mode=0o700)
        try:
            write_json(tmp / "config.json", rec)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        # Killed between the rename and this line, entries() finds the directory and adds it.
        self.index.put(rec["id"], rec, {})

    @staticmethod
    def abandoned(rec: dict) -> bool:
        """Whether `rec` is a half-made container whose creating process has died."""
        creator = rec.get("creating")
        return bool(creator) and not alive(creator.get("pid"), creator.get("start"))

    def leftovers(self) -> list:
        """Directories of creates killed before they published their record, and of removals
        killed before their files were deleted."""
        try:
            entries = list(os.scandir(self.config.containers_dir))
        except FileNotFoundError:
            return []
        found = []
        with contextlib.suppress(FileNotFoundError):
            # Removals killed before their files were deleted (or still deleting: harmless).
            found += [e.path for e in os.scandir(self.trash_dir)]
        with contextlib.suppress(FileNotFoundError):
            found += [e.path for e in os.scandir(self.run_trash_dir)]
        for entry in entries:
            if entry.name.startswith(".new-"):
                rec = read_json(os.path.join(entry.path, "config.json"), {}) or {}
                # Without a record yet, only an old directory is surely not being filled now.
                young = time.time() - entry.stat().st_mtime < 60
                if (not rec and not young) or (rec and self.abandoned(rec)):
                    found.append(entry.path)
        return found

    def release_name(self, name: str, cid: str) -> None:
        """Free `name` if `cid` holds it."""
        path = self.names_dir / name
        with contextlib.suppress(FileNotFoundError):
            if path.read_text().strip() == cid:
                path.unlink()

    def resolve(self, ref: str) -> str:
        """Full id, unique id prefix, or name -> id; NotFound or Conflict (ambiguous prefix)."""
        if not isinstance(ref, str) or not ref or "/" in ref.strip("/") or ref in (".", ".."):
            raise NotFound(f"no such container: {ref}")
        ref = ref.lstrip("/")
        from runtime.spec import is_full_id  # not at import: `ps` never needs spec

        if is_full_id(ref):
            # Written as an id: only that container, never a name or a prefix of another id.
            if (self.config.containers_dir / ref / "config.json").exists():
                return ref
            raise NotFound(f"no such container: {ref}")
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            cid = (self.names_dir / ref).read_text().strip()
            if (self.config.containers_dir / cid / "config.json").exists():
                return cid
        if len(ref) == 64 and (self.config.containers_dir / ref / "config.json").exists():
            return ref
        prefix = ref.lower()
        # Only hex can start an id: a name that resolves to nothing (each create's lookup of
        # its new name) need not list every container's directory.
        is_hex = all(ch in "0123456789abcdef" for ch in prefix)
        matches = [cid for cid in self.ids() if cid.startswith(prefix)] if is_hex else []
        if len(matches) == 1 and (self.config.containers_dir / matches[0] / "config.json").exists():
            return matches[0]
        if len(matches) > 1:
            raise Conflict(f"multiple containers match the id prefix {ref!r}; use more characters")
        raise NotFound(f"no such container: {ref}")

    def read_record(self, cid: str) -> dict:
        """The container's fixed record (config.json); NotFound if missing."""
        rec = read_json(self.paths(cid).config_file)
        if rec is None:
            raise NotFound(f"no such container: {cid}")
        return rec

    def write_record(self, rec: dict) -> None:
        """Write the container's fixed record atomically (and its index row)."""
        # Dirty first: killed between the file and the row, readers take the files instead.
        self.index.mark_dirty(rec["id"])
        write_json(self.paths(rec["id"]).config_file, rec)
        self.index.put(rec["id"], rec, None)

    def read_state(self, cid: str) -> dict:
        """The container's changing state (state.json), {} if none."""
        return read_json(self.paths(cid).state_file, {}) or {}

    def write_state(self, cid: str, state: dict) -> None:
        """Write the container's changing state atomically (and its index row)."""
        self.index.mark_dirty(cid)
        write_json(self.paths(cid).state_file, state)
        self.index.put(cid, None, state)

    def entries(self, repair: bool = False) -> list[tuple[str, dict, dict]]:
        """(id, summary record, state) of every container on disk, from the index.

        The index is checked against the directory's names (one scandir, no file read per
        container): a container missing from it (a create killed after its rename, an index
        lost or from before the index) is read from its files and added; a row without a
        directory is dropped. A row a writer has marked dirty (mid-write, or killed there) is
        read from its files; `repair` (reconcile) also writes it back clean.
        """
        on_disk = set(self.ids())
        rows = self.index.rows()
        if repair:
            self.index.forget_views()  # reconcile: the next list() observes every container
        found = []
        gone = [cid for cid in rows if cid not in on_disk]
        if gone:
            self.index.drop(gone)
        for cid in on_disk:
            row = rows.get(cid)
            if row is not None and not row[2]:
                found.append((cid, row[0], row[1]))
                continue
            with contextlib.suppress(NotFound):
                found.append(self._from_files(cid, write=row is None or repair))
        return found

    def _from_files(self, cid: str, write: bool) -> tuple[str, dict, dict]:
        """One container read from its files (and written to the index); NotFound without a
        record."""
        rec = self.read_record(cid)
        state = self.read_state(cid)
        if write:
            self.index.put(cid, rec, state)
        return cid, self.index.summary(rec), state

    def rebuild_index(self) -> int:
        """Rebuild the index from the files alone (by hand, when it is suspected wrong)."""
        self.index.clear()
        return len(self.entries())

    @contextlib.contextmanager
    def locked(self, cid: str):
        """Serialize changes to one container across processes (agent retries, CLI)."""
        path = self.paths(cid).lock_file
        try:
            fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            raise NotFound(f"no such container: {cid}") from None
        try:
            # POSIX record locks belong to this process: a forked container process or
            # shim never inherits (and so never keeps holding) them, unlike flock().
            fcntl.lockf(fd, fcntl.LOCK_EX)
            # Removed while we waited (remove() renames the directory away): the lock we hold
            # is on a file of a deleted container, not on this one.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if not same:
                raise NotFound(f"no such container: {cid}")
            try:
                yield
            finally:
                # Whatever the holder changed (pause and unpause change no file), a list view
                # computed before it is stale (runtime/container/listing.py).
                self.index.invalidate(cid)
        finally:
            os.close(fd)

    def remove(self, cid: str, name: str | None) -> None:
        """Remove every file of the container (persistent and runtime) and its name.

        The persistent directory is first renamed into the trash (one atomic step), then
        deleted: a process racing for the container's lock (the post-exit hook of `run --rm`
        against the CLI's own delete) can then never recreate `lock` inside a half-deleted
        directory, and a removal killed half-way leaves a trash entry that leftovers() finds,
        never a container without a record.
        """
        paths = self.paths(cid)
        tag = f"{cid}-{os.urandom(4).hex()}"
        run_doomed = None
        try:  # the runtime files too go aside in one step and are deleted after the answer
            self.run_trash_dir.mkdir(mode=0o700, exist_ok=True)
            os.rename(paths.run_dir, self.run_trash_dir / tag)
            run_doomed = self.run_trash_dir / tag
        except OSError:
            shutil.rmtree(paths.run_dir, ignore_errors=True)  # tmpfs: quick
        doomed = paths.dir
        with contextlib.suppress(OSError):
            self.trash_dir.mkdir(mode=0o700, exist_ok=True)
            trash = self.trash_dir / tag
            os.rename(paths.dir, trash)
            doomed = trash
        self.index.drop([cid])
        if name:
            self.release_name(name, cid)
        # The files go after the answer (a few ms per directory on a busy disk): the container
        # is already gone for every reader. A non-daemon thread, so a CLI process finishes it
        # before it exits; a process killed first leaves a trash entry to leftovers().
        trees = [doomed] + ([run_doomed] if run_doomed is not None else [])
        worker = threading.Thread(target=delete_trees, args=(trees,), name="berth-rm")
        try:
            worker.start()
        except RuntimeError:  # no thread possible here (a dead PID namespace): delete now
            delete_trees(trees)
            return
        with _CLEANUPS_LOCK:
            _CLEANUPS[:] = [t for t in _CLEANUPS if t.is_alive()] + [worker]

    @staticmethod
    def wait_cleanups(timeout: float | None = None) -> None:
        """Wait until the files of removed containers are deleted (tests, benchmarks)."""
        with _CLEANUPS_LOCK:
            pending = list(_CLEANUPS)
        for worker in pending:
            worker.join(timeout)
