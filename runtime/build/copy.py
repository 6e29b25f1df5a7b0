"""COPY and ADD: the layer tar holding the context files at their destination in the image."""

import os
import posixpath
import stat
import tarfile
from pathlib import Path

from runtime.build.errors import BuildError

ARCHIVE_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


def _lookup(lower_dirs: list[Path], rel: str) -> Path | None:
    """The top-most existing copy of `rel` in the image's layers."""
    for layer in reversed(lower_dirs):
        path = layer / rel
        if os.path.lexists(path):
            return path
    return None


def _id_from(lower_dirs, file: str, name: str, what: str) -> int:
    if name.isdigit():
        return int(name)
    db = _lookup(lower_dirs, f"etc/{file}")
    if db is not None and db.is_file():
        for line in db.read_text(errors="replace").splitlines():
            fields = line.split(":")
            if len(fields) > 2 and fields[0] == name and fields[2].isdigit():
                return int(fields[2])
    raise BuildError(
        f"{what}: unknown {'user' if file == 'passwd' else 'group'} {name!r} in the image"
    )


def parse_chown(value: str | None, lower_dirs, what: str) -> tuple[int, int] | None:
    """--chown=user[:group] as numeric ids (names looked up in the image's /etc files)."""
    if not value:
        return None
    user, _, group = value.partition(":")
    uid = _id_from(lower_dirs, "passwd", user, what)
    gid = _id_from(lower_dirs, "group", group, what) if group else uid
    return uid, gid


def is_local_archive(path: Path) -> bool:
    """True for a (compressed) tar file, which ADD unpacks."""
    if not path.is_file():
        return False
    with open(path, "rb") as src:
        head = src.read(6)
    if any(head.startswith(m) for m in ARCHIVE_MAGIC):
        return tarfile.is_tarfile(path)
    return tarfile.is_tarfile(path)


class LayerWriter:
    """Writes one COPY/ADD layer: new parent directories first, then the files."""

    def __init__(self, out: Path, lower_dirs: list[Path], owner, chmod: int | None):
        # Closed by close(): the writer lives across several calls.
        self.tar = tarfile.open(out, "w", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        self.lower = lower_dirs
        self.owner = owner
        self.chmod = chmod
        self.made: set[str] = set()

    def close(self) -> None:
        """Finish the tar."""
        self.tar.close()

    def _own(self, info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uname = info.gname = ""
        if self.owner is not None:
            info.uid, info.gid = self.owner
        return info

    def parents(self, rel: str) -> None:
        """Entries for the missing parent directories of `rel` (existing ones stay untouched)."""
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            self.directory("/".join(parts[:i]), 0o755, None)

    def directory(self, rel: str, mode: int, mtime, owned: bool = False) -> None:
        """A directory entry, unless the image or this layer already has it."""
        if not rel or rel in self.made:
            return
        existing = _lookup(self.lower, rel)
        if existing is not None and existing.is_dir() and not owned:
            return
        info = tarfile.TarInfo(rel)
        info.type = tarfile.DIRTYPE
        info.mode = mode
        info.mtime = int(mtime or 0)
        self.tar.addfile(self._own(info) if owned else info)
        self.made.add(rel)

    def path(self, src: Path, rel: str) -> None:
        """One context file, directory or symlink at `rel` (no leading slash)."""
        info = self.tar.gettarinfo(str(src), rel)
        if info.isdir():
            self.made.add(rel)
        self._own(info)
        if self.chmod is not None and not info.issym():
            info.mode = self.chmod
        if info.isreg():
            with open(src, "rb") as data:
                self.tar.addfile(info, data)
        elif info.isdir() or info.issym():
            self.tar.addfile(info)
        else:
            raise BuildError(f"cannot copy {src.name}: not a regular file, directory or symlink")

    def archive(self, src: Path, dest_rel: str, what: str) -> None:
        """ADD's auto-extraction: the archive's members under `dest_rel`, owners kept."""
        try:
            with tarfile.open(src) as archive:
                for member in archive:
                    name = posixpath.normpath(member.name.lstrip("/"))
                    if name == "." or name.startswith("../") or name == "..":
                        if name == ".":
                            continue
                        raise BuildError(
                            f"{what}: archive member {member.name!r} escapes the destination"
                        )
                    member.name = posixpath.join(dest_rel, name) if dest_rel else name
                    if member.islnk():
                        link = posixpath.normpath(member.linkname.lstrip("/"))
                        if link.startswith(".."):
                            raise BuildError(
                                f"{what}: hard link {member.linkname!r} escapes the archive"
                            )
                        member.linkname = posixpath.join(dest_rel, link) if dest_rel else link
                    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
                        continue
                    self.parents(member.name)
                    if member.isdir():
                        self.made.add(member.name)
                    self.tar.addfile(
                        member, archive.extractfile(member) if member.isreg() else None
                    )
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise BuildError(f"{what}: cannot unpack {src.name}: {exc}") from None


def copy_into_layer(
    ctx,
    sources: list[Path],
    dest: str,
    workdir: str,
    out: Path,
    lower_dirs,
    *,
    owner,
    chmod,
    add,
    what,
) -> None:
    """Write the layer of a COPY/ADD of `sources` (context paths) to `dest`."""
    if not dest.startswith("/"):
        dest = posixpath.join(workdir or "/", dest)
    dest_is_dir = dest.endswith("/") or len(sources) > 1
    dest_rel = posixpath.normpath(dest).lstrip("/")
    if dest_rel == ".":
        dest_rel, dest_is_dir = "", True
    existing = _lookup(lower_dirs, dest_rel) if dest_rel else None
    if existing is not None and existing.is_dir() and not existing.is_symlink():
        dest_is_dir = True
    if len(sources) > 1 and not dest.endswith("/"):
        raise BuildError(f"{what}: when copying several sources the destination must end with /")
    writer = LayerWriter(out, lower_dirs, owner, chmod)
    try:
        for src in sources:
            if add and is_local_archive(src):
                writer.parents(dest_rel + "/x" if dest_rel else "x")
                writer.directory(dest_rel, 0o755, None)
                writer.archive(src, dest_rel, what)
                continue
            if src.is_dir() and not src.is_symlink():
                # A directory's contents are copied, not the directory itself.
                writer.parents(dest_rel + "/x" if dest_rel else "x")
                st = os.lstat(src)
                writer.directory(
                    dest_rel, stat.S_IMODE(st.st_mode), st.st_mtime, owned=writer.owner is not None
                )
                for path, rel in ctx.walk(src):
                    if rel:
                        writer.path(path, posixpath.join(dest_rel, rel) if dest_rel else rel)
                continue
            target = posixpath.join(dest_rel, src.name) if dest_is_dir else dest_rel
            if not target:
                raise BuildError(f"{what}: cannot copy a file onto /")
            writer.parents(target)
            writer.path(src, target)
    finally:
        writer.close()
