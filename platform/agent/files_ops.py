"""A container's files for the Docker API: changes, export, stat and `docker cp` out.

Paths inside a running container are resolved from its root (/proc/<pid>/root) one component
at a time, never following a link out of that root (runtime.container.safepath), and trees are
walked by descriptor (os.fwalk, no symlinks followed), so a link inside the container can never
reach the host. A stopped container's files are read from its overlay layers on disk: the
upper (writable) layer over the image's layers, whiteouts hiding what was deleted.

Archives travel as files in the data directory the web and the agents share (as image saves
and loads do), never through the broker: what the agent writes for the web goes to the exports
directory under a name the web chose (`out`, 32 hex digits), streamed to the client and deleted
there; an upload is a file the web wrote in UPLOAD_DIR (`upload`). Each way at most
MAX_ARCHIVE_BYTES.

Uploads (`docker cp` into a container, running or stopped) are agent/files_put.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tarfile
import time
from pathlib import Path, PurePosixPath

from registries.progress import exports_dir

from agent import lookup, overlay_tree
from runtime.container.safepath import fd_path, open_in_root
from runtime.errors import InvalidSpec, InvalidState, NotFound

MAX_ARCHIVE_BYTES = 4 << 30  # each way; the web refuses larger with 413
_TOKEN = re.compile(r"[0-9a-f]{32}")
STALE_SECONDS = 3600  # an archive the web never fetched (it gave up waiting) is deleted then
# What the runtime itself puts in a container (Docker keeps these out of `diff` too).
_RUNTIME_FILES = {"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"}
_RUNTIME_DIRS = {"/proc", "/sys", "/dev"}
# Go's os.FileMode bits, which the docker CLI reads from X-Docker-Container-Path-Stat.
_GO_DIR, _GO_LINK, _GO_DEVICE, _GO_PIPE, _GO_SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 24
_GO_SETUID, _GO_SETGID, _GO_CHAR, _GO_STICKY = 1 << 23, 1 << 22, 1 << 21, 1 << 20


class TooLarge(InvalidSpec):
    """The archive would exceed MAX_ARCHIVE_BYTES."""


def state_of(rt, container) -> dict:
    state = lookup.find(rt, container)
    if state is None:
        raise NotFound(f"container {container.name} does not exist on host {container.host.name}")
    return state


def _running_root(rt, container) -> int:
    """An O_PATH descriptor of the running container's root directory."""
    state = state_of(rt, container)
    if state.get("status") not in ("running", "paused") or not state.get("pid"):
        raise InvalidState(
            f"container {container.name} is not running: Berth copies files into and out of "
            "running containers (start it first)"
        )
    return os.open(f"/proc/{state['pid']}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def layers_of(rt, container) -> list[str]:
    """The container's layer directories, top first: upper, then the image's."""
    cid = state_of(rt, container)["id"]
    record = rt.store.read_record(cid)
    return [str(rt.store.paths(cid).upper), *(record.get("lower") or [])]


def go_mode(st) -> int:
    """A stat result's mode as Go's os.FileMode."""
    mode = st.st_mode & 0o777
    kind = stat.S_IFMT(st.st_mode)
    mode |= {
        stat.S_IFDIR: _GO_DIR,
        stat.S_IFLNK: _GO_LINK,
        stat.S_IFBLK: _GO_DEVICE,
        stat.S_IFCHR: _GO_DEVICE | _GO_CHAR,
        stat.S_IFIFO: _GO_PIPE,
        stat.S_IFSOCK: _GO_SOCKET,
    }.get(kind, 0)
    for bit, go in ((stat.S_ISUID, _GO_SETUID), (stat.S_ISGID, _GO_SETGID)):
        if st.st_mode & bit:
            mode |= go
    if st.st_mode & stat.S_ISVTX:
        mode |= _GO_STICKY
    return mode


def clean_path(path: str) -> str:
    if not path or "\0" in path:
        raise InvalidSpec("a path inside the container is required")
    return path if path.startswith("/") else "/" + path


def _split(path: str) -> tuple[str, str]:
    """('/etc', 'passwd') for /etc/passwd; ('/etc', '.') for /etc/. (the contents only)."""
    trimmed = path.rstrip("/") or "/"
    if trimmed == "/":
        return "/", "."
    parent, _, name = trimmed.rpartition("/")
    return parent or "/", name


@contextlib.contextmanager
def _entry(root: int, path: str):
    """(parent descriptor, name, lstat) of `path` inside the root; the last link not followed."""
    parent_path, name = _split(path)
    if name == "..":
        raise InvalidSpec(f"path {path!r} may not end in ..")
    try:
        parent = open_in_root(root, parent_path)
    except InvalidSpec as err:
        if "does not exist" in str(err):
            raise NotFound(f"Could not find the file {path} in container") from None
        raise
    try:
        if name == ".":
            st = os.stat(fd_path(parent))
        else:
            try:
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                raise NotFound(f"Could not find the file {path} in container") from None
        yield parent, name, st
    finally:
        os.close(parent)


def _stat_dict(name: str, st, link: str = "") -> dict:
    return {
        "name": name,
        "size": st.st_size,
        "mode": go_mode(st),
        "mtime": _rfc3339(st.st_mtime),
        "linkTarget": link,
    }


def _rfc3339(seconds: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")


def stat_path(rt, container, params) -> dict:
    """What HEAD /archive answers: the path's name, size, Go mode, mtime, link target."""
    path = clean_path(params.get("path"))
    if not _runs(rt, container):
        _, full, st = overlay_tree.layered_entry(layers_of(rt, container), path)
        link = os.readlink(full) if stat.S_ISLNK(st.st_mode) else ""
        return _stat_dict(PurePosixPath(path.rstrip("/") or "/").name or "/", st, link)
    root = _running_root(rt, container)
    try:
        with _entry(root, path) as (parent, name, st):
            link = os.readlink(name, dir_fd=parent) if stat.S_ISLNK(st.st_mode) else ""
            return _stat_dict(PurePosixPath(path.rstrip("/") or "/").name or "/", st, link)
    finally:
        os.close(root)


def output_path(token: str) -> Path:
    """Where the archive of the web's call `token` is written (exports directory)."""
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise InvalidSpec("the call names no valid output (32 hex digits)")
    return exports_dir() / f"files-{token}.tar"


def _sweep(folder: Path) -> None:
    """Archives of calls the web gave up on (it deletes the ones it streamed)."""
    limit = time.time() - STALE_SECONDS
    for old in folder.glob("*files-*.tar*"):
        with contextlib.suppress(OSError):
            if old.lstat().st_mtime < limit:
                old.unlink()


@contextlib.contextmanager
def _output(params):
    """A _Writer onto the call's output file: renamed into place when done, gone on error;
    handed to the web by a host with a data directory of its own (agent/remote_files.py)."""
    final = output_path(params.get("out"))
    final.parent.mkdir(parents=True, exist_ok=True)
    _sweep(final.parent)
    partial = final.with_name(f".{final.name}.part")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            writer = _Writer(out)
            yield writer
            writer.close()
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)
    from agent import remote_files  # local: remote_files imports the control client

    remote_files.push(final, message=params.get("_message"))


class _Writer:
    """A tar written to a file, refusing to grow past the limit."""

    def __init__(self, out):
        self.out = out
        self.links: dict[tuple[int, int], str] = {}  # (dev, inode) -> first name (hard links)
        self.tar = tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115 (closed in close())

    def add(self, arcname: str, st, *, link: str = "", data_fd: int | None = None) -> None:
        info = tarfile.TarInfo(arcname)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.mtime = int(st.st_mtime)
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFDIR:
            info.type = tarfile.DIRTYPE
        elif kind == stat.S_IFLNK:
            info.type, info.linkname = tarfile.SYMTYPE, link
        elif kind in (stat.S_IFCHR, stat.S_IFBLK):
            info.type = tarfile.CHRTYPE if kind == stat.S_IFCHR else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif kind == stat.S_IFIFO:
            info.type = tarfile.FIFOTYPE
        elif kind == stat.S_IFREG and st.st_nlink > 1 and (st.st_dev, st.st_ino) in self.links:
            info.type, info.linkname = tarfile.LNKTYPE, self.links[(st.st_dev, st.st_ino)]
        elif kind == stat.S_IFREG:
            info.size = st.st_size
            if st.st_nlink > 1:
                self.links[(st.st_dev, st.st_ino)] = arcname
        else:
            return  # sockets are not archived
        if self.out.tell() + info.size > MAX_ARCHIVE_BYTES:
            raise TooLarge(f"the archive is larger than {MAX_ARCHIVE_BYTES >> 20} MiB")
        if info.type == tarfile.REGTYPE and data_fd is not None:
            with os.fdopen(data_fd, "rb", closefd=False) as data:
                self.tar.addfile(info, data)
        else:
            self.tar.addfile(info)

    def close(self) -> None:
        self.tar.close()
        self.size = self.out.tell()


def _add_file(writer: _Writer, parent: int, name: str, arcname: str, st) -> None:
    if stat.S_ISLNK(st.st_mode):
        writer.add(arcname, st, link=os.readlink(name, dir_fd=parent))
    elif stat.S_ISREG(st.st_mode):
        fd = os.open(
            name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=parent
        )
        try:
            writer.add(arcname, os.fstat(fd), data_fd=fd)
        finally:
            os.close(fd)
    else:
        writer.add(arcname, st)


def get_archive(rt, container, params) -> dict:
    """GET /archive: the path as a tar (a directory with everything under it), and its stat."""
    path = clean_path(params.get("path"))
    if not _runs(rt, container):
        return _layered_archive(layers_of(rt, container), path, params)
    root = _running_root(rt, container)
    try:
        with _entry(root, path) as (parent, name, st), _output(params) as writer:
            base = PurePosixPath(path.rstrip("/") or "/").name or "/"
            link = os.readlink(name, dir_fd=parent) if stat.S_ISLNK(st.st_mode) else ""
            arc = "." if name == "." else name
            if not stat.S_ISDIR(st.st_mode):
                _add_file(writer, parent, name, arc, st)
            else:
                top = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
                try:
                    _add_tree(writer, top, arc)
                finally:
                    os.close(top)
        return {"stat": _stat_dict(base, st, link), "size": writer.size}
    finally:
        os.close(root)


def _add_tree(writer: _Writer, top: int, arc: str) -> None:
    """Every entry under the directory `top`, by descriptor, links not followed."""
    writer.add(arc, os.fstat(top))
    for dirpath, dirnames, filenames, dirfd in os.fwalk(".", dir_fd=top, follow_symlinks=False):
        prefix = os.path.normpath(os.path.join(arc, dirpath))
        for name in sorted(dirnames) + sorted(filenames):
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            arcname = f"{prefix}/{name}"
            if stat.S_ISDIR(st.st_mode):
                writer.add(arcname, st)
            else:
                _add_file(writer, dirfd, name, arcname, st)


def _runs(rt, container) -> bool:
    return state_of(rt, container).get("status") in ("running", "paused")


def _layered_archive(layers: list[str], path: str, params) -> dict:
    """GET /archive of a stopped container: the path from its merged layers."""
    _, full, st = overlay_tree.layered_entry(layers, path)
    base = PurePosixPath(path.rstrip("/") or "/").name or "/"
    contents = path.endswith("/.") or path.rstrip("/") == ""
    arc = "." if contents else base
    link = os.readlink(full) if stat.S_ISLNK(st.st_mode) else ""
    with _output(params) as writer:
        _add_disk(writer, full, arc, st)
        if stat.S_ISDIR(st.st_mode):
            rel = overlay_tree.rel_of(layers, full)
            for child, layer, child_st in overlay_tree.merged(
                overlay_tree.holders_of(layers, rel), rel
            ):
                _add_disk(
                    writer,
                    os.path.join(layer, child),
                    f"{arc}/{child[len(rel) :].lstrip('/')}",
                    child_st,
                )
    return {"stat": _stat_dict(base, st, link), "size": writer.size}


def _add_disk(writer: _Writer, full: str, arc: str, st) -> None:
    """One entry of a layer on disk (no links followed)."""
    if stat.S_ISLNK(st.st_mode):
        writer.add(arc, st, link=os.readlink(full))
    elif stat.S_ISREG(st.st_mode):
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            writer.add(arc, os.fstat(fd), data_fd=fd)
        finally:
            os.close(fd)
    else:
        writer.add(arc, st)


def export(rt, container, params) -> dict:
    """GET /export: the container's root filesystem (its layers merged) as a tar."""
    layers = layers_of(rt, container)
    with _output(params) as writer:
        for rel, layer, st in overlay_tree.merged(layers):
            _add_disk(writer, os.path.join(layer, rel), rel, st)
    return {"size": writer.size}


def changes(rt, container, params) -> dict:
    """GET /changes: what the writable layer changed: Kind 0 modified, 1 added, 2 deleted."""
    upper, *lower = layers_of(rt, container)
    found: dict[str, tuple[int, bool]] = {}
    for dirpath, dirnames, filenames, _ in os.fwalk(upper, follow_symlinks=False):
        rel_dir = os.path.relpath(dirpath, upper)
        for name in dirnames + filenames:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            st = overlay_tree.lstat_or_none(os.path.join(upper, rel))
            in_lower = any(
                overlay_tree.lstat_or_none(os.path.join(layer, rel)) is not None for layer in lower
            )
            kind = 2 if overlay_tree.is_whiteout(st) else 0 if in_lower else 1
            found["/" + rel] = (kind, st is not None and stat.S_ISDIR(st.st_mode))
    kept = {p: v for p, v in found.items() if p not in _RUNTIME_FILES}
    # Deepest first: a directory that is only there for the runtime's files or mount points
    # (a modified /etc holding only /etc/hosts, an added /proc) is no change of the user's.
    for path in sorted(kept, key=lambda p: p.count("/"), reverse=True):
        kind, is_dir = kept[path]
        inner = any(q.startswith(path + "/") for q in kept)
        if is_dir and not inner and (kind == 0 or path in _RUNTIME_DIRS):
            kept.pop(path)
    return {"changes": [{"Path": p, "Kind": v[0]} for p, v in sorted(kept.items())]}


def put_archive(rt, container, params) -> dict:
    """PUT /archive (agent/files_put.py)."""
    from agent import files_put  # local: the upload half imports this module

    return files_put.put_archive(rt, container, params)


OPS = {
    "stat": stat_path,
    "get": get_archive,
    "put": put_archive,
    "export": export,
    "changes": changes,
}
