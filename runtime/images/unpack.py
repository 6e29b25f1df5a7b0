"""Unpack one layer tar into a directory that overlayfs can stack as a lower layer.

OCI layers mark deletions with `.wh.<name>` files and `.wh..wh..opq` (opaque directory).
Each layer directory is unpacked alone and stacked by overlayfs at run time, so whiteouts are
stored the way overlayfs reads them: a 0:0 character device for a deleted name and the xattr
`trusted.overlay.opaque=y` on an opaque directory.

Members are checked before anything is written: no absolute names, no `..`, no writing
through a symlink or a file, hard links only to members already unpacked in this layer.
"""

import os
import shutil
import stat
import tarfile

from runtime.errors import ImageError

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_XATTR_PAX = "SCHILY.xattr."
# xattrs a layer may not set: overlayfs's own ones would forge whiteouts or redirects.
_FORBIDDEN_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
_DIR, _FILE, _WHITEOUT = "dir", "file", "whiteout"


def safe_member_name(name: str, what: str) -> str:
    """Normalize a member name to a relative path, refusing absolute names and `..`."""
    if name.startswith("/"):
        raise ImageError(f"{what}: member {name!r} has an absolute path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ImageError(f"{what}: member {name!r} escapes the layer ('..')")
    return "/".join(parts)


class LayerUnpacker:
    """Write the members of one layer tar under `root`, tracking what each path is."""

    def __init__(self, root: str, what: str):
        self.root = root
        self.what = what
        self.kinds = {"": _DIR}
        self.size = 0
        self._dir_attrs = {}  # rel -> (mode, mtime ns); the last entry of a directory wins
        os.chmod(root, 0o755)

    def _path(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def _ensure_dir(self, rel: str, member_name: str) -> None:
        """Create the missing parents of a member, refusing to pass through non-directories."""
        if self.kinds.get(rel) == _DIR:
            return
        prefix = ""
        for part in rel.split("/"):
            prefix = f"{prefix}/{part}" if prefix else part
            kind = self.kinds.get(prefix)
            if kind == _DIR:
                continue
            if kind == _WHITEOUT:
                # Deleted, then recreated in the same layer: an opaque directory says that.
                os.unlink(self._path(prefix))
                os.mkdir(self._path(prefix), 0o755)
                os.setxattr(self._path(prefix), OPAQUE_XATTR, b"y")
            elif kind is None:
                os.mkdir(self._path(prefix), 0o755)
            else:
                raise ImageError(
                    f"{self.what}: member {member_name!r} goes through {prefix!r}, which is not a directory"
                )
            self.kinds[prefix] = _DIR

    def _clear(self, rel: str, keep_dir: bool) -> None:
        """Remove what an earlier member left at `rel` (later members win, as in tar)."""
        kind = self.kinds.get(rel)
        if kind is None or (kind == _DIR and keep_dir):
            return
        path = self._path(rel)
        if kind == _DIR:
            shutil.rmtree(path)
            inner = rel + "/"
            for key in [key for key in self.kinds if key.startswith(inner)]:
                del self.kinds[key]
        else:
            os.unlink(path)
        del self.kinds[rel]

    def add(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        """Unpack one member (the tar stream must be positioned at it)."""
        rel = safe_member_name(member.name, self.what)
        parent, _, base = rel.rpartition("/")
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parent, base, member.name)
            return
        if not rel and not member.isdir():
            raise ImageError(f"{self.what}: member {member.name!r} replaces the layer's root")
        if parent:
            self._ensure_dir(parent, member.name)
        recreated = self.kinds.get(rel) == _WHITEOUT
        self._clear(rel, keep_dir=member.isdir())
        path = self._path(rel)
        if member.isreg():
            self._regular(tar, member, path)
        elif member.isdir():
            if rel not in self.kinds:
                os.mkdir(path, 0o700)
            if recreated:
                # Deleted, then recreated in the same layer: an opaque directory says that.
                os.setxattr(path, OPAQUE_XATTR, b"y")
            self._set_owner_xattrs(path, member)
            self._dir_attrs[rel] = (member.mode, int(member.mtime * 1e9))
            self.kinds[rel] = _DIR
            return
        elif member.issym():
            os.symlink(member.linkname, path)
            self._set_owner_xattrs(path, member)
        elif member.islnk():
            target = safe_member_name(member.linkname, self.what)
            if self.kinds.get(target) != _FILE:
                raise ImageError(
                    f"{self.what}: hard link {member.name!r} points to {member.linkname!r}, "
                    "which is not a file earlier in this layer"
                )
            os.link(self._path(target), path, follow_symlinks=False)
        elif member.ischr() or member.isblk():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))
            self._set_owner_xattrs(path, member)
            os.chmod(path, member.mode)
        elif member.isfifo():
            os.mkfifo(path, 0o600)
            self._set_owner_xattrs(path, member)
            os.chmod(path, member.mode)
        else:
            raise ImageError(
                f"{self.what}: member {member.name!r} has unsupported type {member.type!r}"
            )
        if not member.islnk():
            os.utime(path, ns=(int(member.mtime * 1e9),) * 2, follow_symlinks=False)
        self.kinds[rel] = _FILE

    def _regular(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
        try:
            with os.fdopen(fd, "wb", closefd=False) as out:
                shutil.copyfileobj(tar.extractfile(member), out, 1 << 20)
            # chown first: it clears setuid/setgid bits that chmod then restores.
            os.fchown(fd, member.uid, member.gid)
            os.fchmod(fd, member.mode)
        finally:
            os.close(fd)
        self._set_xattrs(path, member)
        self.size += member.size

    def _set_owner_xattrs(self, path: str, member: tarfile.TarInfo) -> None:
        os.lchown(path, member.uid, member.gid)
        self._set_xattrs(path, member)

    def _set_xattrs(self, path: str, member: tarfile.TarInfo) -> None:
        for key, value in member.pax_headers.items():
            if not key.startswith(_XATTR_PAX):
                continue
            name = key[len(_XATTR_PAX) :]
            if name.startswith(_FORBIDDEN_XATTR_PREFIXES):
                continue
            raw = value.encode("utf-8", "surrogateescape")
            try:
                os.setxattr(path, name, raw, follow_symlinks=False)
            except OSError as err:
                raise ImageError(
                    f"{self.what}: cannot set xattr {name!r} on {member.name!r}: {err.strerror}"
                ) from None

    def _whiteout(self, parent: str, base: str, member_name: str) -> None:
        if parent:
            self._ensure_dir(parent, member_name)
        if base == OPAQUE_MARKER:
            os.setxattr(self._path(parent), OPAQUE_XATTR, b"y")
            return
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return  # other AUFS metadata (.wh..wh.plnk ...) means nothing to overlayfs
        name = base[len(WHITEOUT_PREFIX) :]
        rel = f"{parent}/{name}" if parent else name
        self._clear(rel, keep_dir=False)
        os.mknod(self._path(rel), stat.S_IFCHR, os.makedev(0, 0))
        self.kinds[rel] = _WHITEOUT

    def finish(self) -> None:
        """Apply directory modes and times last, so read-only directories could be filled."""
        for rel in sorted(self._dir_attrs, key=lambda rel: -rel.count("/")):
            if self.kinds.get(rel) == _DIR:  # a later member may have replaced it
                mode, mtime = self._dir_attrs[rel]
                os.chmod(self._path(rel), mode)
                os.utime(self._path(rel), ns=(mtime, mtime))


def unpack_layer(reader, root: str, what: str) -> int:
    """Unpack the tar stream `reader` (a HashingReader) under `root`; return the content size.

    With `root` None the stream is only read and checked (the layer is already unpacked).
    """
    unpacker = LayerUnpacker(root, what) if root is not None else None
    size = 0
    with tarfile.open(fileobj=reader, mode="r|") as tar:
        for member in tar:
            if unpacker is not None:
                unpacker.add(tar, member)
            else:
                safe_member_name(member.name, what)
                if member.isreg():
                    size += member.size
    if unpacker is not None:
        unpacker.finish()
        size = unpacker.size
    _check_end_of_archive(reader, tar.offset, what)
    return size


def _check_end_of_archive(reader, offset: int, what: str) -> None:
    """Refuse a tar cut at a member boundary: tarfile takes a missing header for the end."""
    block = reader.block_at(offset, tarfile.BLOCKSIZE)
    if block is None or block.strip(b"\0"):
        raise ImageError(
            f"{what}: the tar archive is truncated or corrupt (no end-of-archive marker)"
        )
