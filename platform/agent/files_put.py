"""`docker cp` into a container: an uploaded tar extracted, running or stopped (files_ops.py).

The upload is a file the web wrote in UPLOAD_DIR (`upload`, its name checked here), checked
whole before the first byte is written (names, types, conflicts with what exists). Into a
running container (or a created one whose init waits for `start` in its finished root) it goes
through /proc/<pid>/root, each path resolved inside that root (runtime.container.safepath).
Into a stopped one it goes into the upper layer on disk, with the container's store lock held
so that it cannot start meanwhile: the target is resolved in the merged layers (links resolve
inside them), the directories on the way are copied up from the layer that shows them (mode,
owner, times), a whiteout is replaced and a directory that replaces one is made opaque.

Owners: the container's root (or the archive's ids with copyUIDGID). Through a running
user-namespaced container's root they are its range's ids; the upper layer on disk keeps the
image's own ids (it is idmapped when the container runs), so there they are not shifted.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import stat
import tarfile
from pathlib import Path, PurePosixPath

from django.conf import settings
from dockerapi.tar_rules import TarRefused, check_members

from agent import control_client, remote_files
from agent.files_ops import MAX_ARCHIVE_BYTES, TooLarge, clean_path, layers_of, state_of
from agent.overlay_tree import OPAQUE, is_whiteout, layered_entry, lstat_or_none, rel_of
from runtime.container.safepath import fd_path, open_in_root
from runtime.errors import InvalidSpec, InvalidState, NotFound

_UPLOAD = re.compile(r"cp-[0-9a-f]{32}\.tar")


def upload_path(name, message=None) -> Path:
    """The upload the web wrote for this call: a file of UPLOAD_DIR (the name is checked),
    fetched from the web by a host with a data directory of its own (agent/remote_files.py)."""
    if not isinstance(name, str) or not _UPLOAD.fullmatch(name):
        raise InvalidSpec("the call names no valid upload")
    path = Path(settings.UPLOAD_DIR) / name
    if not path.exists() and message is not None:
        try:
            remote_files.fetch(path, message=message)
        except control_client.ControlPlaneError as err:
            raise NotFound(f"the upload {name} is gone ({err})") from None
    if not path.is_file() or path.is_symlink():
        raise NotFound(f"the upload {name} is gone")
    return path


def _shift(uid: int, base: int) -> int:
    return base + uid if uid < 65536 else base


def put_archive(rt, container, params) -> dict:
    """PUT /archive: extract the uploaded tar under `path` (an existing directory) inside the
    container, running or stopped; everything is checked first, so a refusal writes nothing."""
    path = clean_path(params.get("path"))
    source = upload_path(params.get("upload"), params.get("_message"))
    try:
        return _put_archive(rt, container, params, path, source)
    finally:
        if remote_files.remote():
            source.unlink(missing_ok=True)  # the fetched copy (the web deletes its own)


def _put_archive(rt, container, params, path: str, source: Path) -> dict:
    if source.stat().st_size > MAX_ARCHIVE_BYTES:
        raise TooLarge(f"the archive is larger than {MAX_ARCHIVE_BYTES >> 20} MiB")
    try:
        tar = tarfile.open(source, mode="r:*")  # noqa: SIM115 (closed below)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise InvalidSpec(f"the body is not a tar archive: {err}") from None
    try:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, EOFError, OSError) as err:
            raise InvalidSpec(f"the body is not a tar archive: {err}") from None
        try:
            check_members(members)
        except TarRefused as err:
            raise InvalidSpec(str(err)) from None
        state = state_of(rt, container)
        pid = _live_pid(state)
        if pid:
            _put_live(pid, tar, members, path, params)
        else:
            _put_stopped(rt, container, state["id"], tar, members, path, params)
    finally:
        tar.close()
    return {"written": len(members)}


def _live_pid(state) -> int:
    """The pid whose root is the container's: running, paused, or created and waiting for
    `start` (its init has set up the root and waits before exec); 0 when stopped."""
    pid = int(state.get("pid") or 0)
    if not pid or state.get("status") not in ("running", "paused", "created"):
        return 0
    return pid if os.path.exists(f"/proc/{pid}") else 0


def _put_live(pid: int, tar, members, path: str, params) -> None:
    root = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if os.path.samestat(os.fstat(root), os.stat("/")):
            raise InvalidState("the container's process has no root of its own yet; try again")
        try:
            dest = open_in_root(root, path)
        except InvalidSpec:
            raise NotFound(f"Could not find the file {path} in container") from None
        try:
            if not stat.S_ISDIR(os.stat(fd_path(dest)).st_mode):
                raise InvalidSpec(f"extraction point is not a directory: {path}")
            plan = _plan(
                members,
                bool(params.get("no_overwrite_dir_non_dir")),
                lambda relative: _is_dir_at(dest, relative),
            )
            first_uid, first_gid = _root_ids(pid)
            chowns = []
            # Written as the container's root: a user-namespaced container's filesystem takes
            # only ids mapped into its namespace (and the files are then its root's).
            with _acting_as(first_uid, first_gid):
                for member, relative in plan:
                    _write(tar, dest, member, relative)
                    chowns.append((relative, member.uid, member.gid))
            if params.get("copy_uid_gid"):
                for relative, uid, gid in chowns:
                    _chown(dest, relative, _shift(uid, first_uid), _shift(gid, first_gid))
        finally:
            os.close(dest)
    finally:
        os.close(root)


def _is_dir_at(dest: int, relative: str):
    """Whether `relative` under the descriptor is a directory (None: it does not exist)."""
    try:
        fd = open_in_root(dest, relative)
    except InvalidSpec:
        return None
    try:
        return stat.S_ISDIR(os.stat(fd_path(fd)).st_mode)
    finally:
        os.close(fd)


def _put_stopped(rt, container, cid: str, tar, members, path: str, params) -> None:
    """Into a stopped container's upper layer, its store lock held (no start meanwhile)."""
    with rt.store.locked(cid):
        state = state_of(rt, container)
        if _live_pid(state) or state.get("status") in ("running", "paused"):
            raise InvalidState(f"container {container.name} started meanwhile; copy again")
        layers = layers_of(rt, container)
        _, full, st = layered_entry(layers, path)
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidSpec(f"extraction point is not a directory: {path}")
        rel = rel_of(layers, full)
        base = "/" + rel if rel else ""
        plan = _plan(
            members,
            bool(params.get("no_overwrite_dir_non_dir")),
            lambda relative: _layered_is_dir(layers, f"{base}/{relative}"),
        )
        upper = layers[0]
        _copy_up(layers, rel)
        top = os.open(upper, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            dest = open_in_root(top, rel) if rel else os.dup(top)
        finally:
            os.close(top)
        try:
            for member, relative in plan:
                _write(tar, dest, member, relative, layered=True)
            if params.get("copy_uid_gid"):
                # The upper layer keeps the image's own ids (idmapped when it runs).
                for member, relative in plan:
                    _chown(dest, relative, _shift(member.uid, 0), _shift(member.gid, 0))
        finally:
            os.close(dest)


def _layered_is_dir(layers: list[str], path: str):
    try:
        return stat.S_ISDIR(layered_entry(layers, path)[2].st_mode)
    except NotFound:
        return None


def _copy_up(layers: list[str], rel: str) -> None:
    """Make each directory of `rel` (resolved, every part a directory in the merged view) in
    the upper layer, with the mode, owner and times it shows from the layer below."""
    upper, done = layers[0], ""
    for part in [p for p in rel.split("/") if p]:
        done = f"{done}/{part}" if done else part
        target = os.path.join(upper, done)
        existing = lstat_or_none(target)
        if existing is not None and stat.S_ISDIR(existing.st_mode):
            continue
        if existing is not None:  # layered_entry found a directory: nothing else shows here
            raise InvalidState(f"/{done} changed in the container's upper layer; copy again")
        try:  # what shows there, found through the layers (their links resolved inside)
            shown = layered_entry(layers, "/" + done)[2]
        except NotFound:
            shown = None
        os.mkdir(target, 0o700)
        if shown is not None and stat.S_ISDIR(shown.st_mode):
            os.chown(target, shown.st_uid, shown.st_gid, follow_symlinks=False)
            os.chmod(target, stat.S_IMODE(shown.st_mode), follow_symlinks=False)
            os.utime(target, ns=(shown.st_atime_ns, shown.st_mtime_ns), follow_symlinks=False)
        else:
            os.chmod(target, 0o755)


def _plan(members, no_overwrite: bool, is_dir) -> list:
    """Each member with its path under the target; conflicts refused before anything is written.

    `is_dir(relative)` says what is there now: True, False, or None (nothing)."""
    plan = []
    for member in members:
        relative = "/".join(p for p in PurePosixPath(member.name).parts if p not in ("/", "."))
        if not relative:
            continue
        if no_overwrite:
            there = is_dir(relative)
            if there is not None and there != member.isdir():
                what = "a directory" if there else "a non-directory"
                raise InvalidSpec(
                    f"cannot overwrite {what} {relative!r} with a "
                    f"{'directory' if member.isdir() else 'non-directory'}"
                )
        plan.append((member, relative))
    return plan


def _root_ids(pid: int) -> tuple[int, int]:
    """The host uid and gid of the container's root (0, 0 without a user namespace)."""
    ids = []
    for name in ("uid_map", "gid_map"):
        first = 0
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
                inside, outside, _count = (int(x) for x in line.split())
                if inside == 0:
                    first = outside
        ids.append(first)
    return ids[0], ids[1]


_LIBC = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def _acting_as(uid: int, gid: int):
    """File system ids of this thread set to uid/gid (setfsuid is per thread), then back."""
    if not uid and not gid:
        yield
        return
    _LIBC.setfsgid(gid)
    _LIBC.setfsuid(uid)
    try:
        yield
    finally:
        _LIBC.setfsuid(0)
        _LIBC.setfsgid(0)


def _chown(dest: int, relative: str, uid: int, gid: int) -> None:
    parent_rel, _, name = relative.rpartition("/")
    parent = open_in_root(dest, parent_rel) if parent_rel else os.dup(dest)
    try:
        fd_dir = os.open(fd_path(parent), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    finally:
        os.close(parent)
    try:
        os.chown(name, uid, gid, dir_fd=fd_dir, follow_symlinks=False)
    finally:
        os.close(fd_dir)


def _write(tar, dest: int, member, relative: str, layered: bool = False) -> None:
    """One member written under `dest`; `layered`: `dest` is in a stopped container's upper
    layer, where a directory replacing a whiteout is made opaque (what was deleted below
    stays hidden)."""
    parent_rel, _, name = relative.rpartition("/")
    parent = open_in_root(dest, parent_rel, create="dir") if parent_rel else os.dup(dest)
    try:
        fd_dir = os.open(fd_path(parent), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    finally:
        os.close(parent)
    mode = member.mode & 0o1777  # no setuid or setgid bits from an upload
    try:
        existing = _lstat_at(fd_dir, name)
        if member.isdir():
            if existing is None:
                os.mkdir(name, 0o700, dir_fd=fd_dir)
            elif not stat.S_ISDIR(existing.st_mode):
                os.unlink(name, dir_fd=fd_dir)
                os.mkdir(name, 0o700, dir_fd=fd_dir)
                if layered and is_whiteout(existing):
                    _make_opaque(fd_dir, name)
            _finish_entry(fd_dir, name, mode)
            return
        if existing is not None:
            if stat.S_ISDIR(existing.st_mode):
                raise InvalidSpec(f"cannot overwrite the directory {relative!r} with a file")
            os.unlink(name, dir_fd=fd_dir)  # a link is replaced, never followed
        if member.issym():
            os.symlink(member.linkname, name, dir_fd=fd_dir)
        elif member.islnk():
            source = open_in_root(dest, member.linkname.lstrip("./"))
            try:
                os.link(fd_path(source), name, dst_dir_fd=fd_dir, follow_symlinks=True)
            finally:
                os.close(source)
        elif member.isfifo():
            os.mkfifo(name, 0o600, dir_fd=fd_dir)
            _finish_entry(fd_dir, name, mode)
        else:
            fd = os.open(
                name,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=fd_dir,
            )
            with os.fdopen(fd, "wb") as out:
                source = tar.extractfile(member)
                while chunk := source.read(1 << 20):
                    out.write(chunk)
                os.fchmod(out.fileno(), mode)
            os.utime(name, (member.mtime, member.mtime), dir_fd=fd_dir, follow_symlinks=False)
    finally:
        os.close(fd_dir)


def _make_opaque(dir_fd: int, name: str) -> None:
    """Mark a directory of an upper layer opaque for either kind of overlay mount (a private
    user namespace's reads user.*, the host's trusted.*)."""
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        for key in OPAQUE:
            os.setxattr(fd, key, b"y")
    finally:
        os.close(fd)


def _lstat_at(dir_fd: int, name: str):
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _finish_entry(dir_fd: int, name: str, mode: int) -> None:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
