"""The build context: a directory or a tar file; every path checked to stay inside it."""

import fnmatch
import hashlib
import os
import posixpath
import shutil
import tempfile
from pathlib import Path

from runtime.build.errors import ContextError
from runtime.tar_filters import with_filters

CHUNK = 1 << 20


def _ignore_patterns(root: Path) -> list[tuple[bool, str]]:
    """.dockerignore lines as (negated, pattern)."""
    try:
        lines = (root / ".dockerignore").read_text().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = posixpath.normpath(line.lstrip("!").strip().lstrip("/"))
        out.append((negate, pattern))
    return out


class BuildContext:
    """The files a build may read; `close()` removes the unpacked copy of a tar context."""

    def __init__(self, path, scratch_parent: Path | None = None):
        path = Path(path)
        self._tmp = None
        if path.is_dir():
            self.root = path.resolve()
        elif path.is_file():
            self._tmp = tempfile.mkdtemp(prefix="berth-context-", dir=scratch_parent)
            self.root = Path(self._tmp).resolve()
            self._unpack(path)
        else:
            raise ContextError(f"build context {path} does not exist")
        self._ignore = _ignore_patterns(self.root)

    def _unpack(self, archive: Path) -> None:
        tarfile = with_filters()
        if tarfile is None:  # PEP 706: never unpack without the filters
            self.close()
            raise ContextError(
                "unpacking a build context needs tarfile's extraction filters "
                "(Python 3.11.4 or newer, or the backports.tarfile package)"
            )
        try:
            with tarfile.open(archive) as tar:
                # The "data" filter refuses absolute names, "..", and links leaving the tree.
                tar.extractall(self.root, filter="data")
        except tarfile.FilterError as exc:
            self.close()
            raise ContextError(f"build context {archive.name}: {exc}") from None
        except (tarfile.TarError, OSError, EOFError) as exc:
            self.close()
            raise ContextError(
                f"build context {archive.name} is not a readable tar: {exc}"
            ) from None

    def close(self) -> None:
        """Remove the unpacked tar context, if any."""
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def ignored(self, rel: str) -> bool:
        """True if .dockerignore excludes `rel` (last matching line wins)."""
        result = False
        for negate, pattern in self._ignore:
            if fnmatch.fnmatchcase(rel, pattern) or rel.startswith(pattern.rstrip("/") + "/"):
                result = not negate
        return result

    def _check_inside(self, rel: str, what: str) -> Path:
        norm = posixpath.normpath("/" + rel.replace("\\", "/")).lstrip("/")
        raw = posixpath.normpath(rel)
        if raw.startswith("../") or raw == ".." or os.path.isabs(rel):
            raise ContextError(f"{what}: {rel!r} is outside the build context")
        path = self.root / norm if norm not in ("", ".") else self.root
        # Symlinks in the path are followed only while they stay inside the context.
        real = Path(os.path.realpath(path))
        if real != self.root and self.root not in real.parents:
            raise ContextError(f"{what}: {rel!r} resolves outside the build context")
        return real

    def file(self, rel: str, what: str = "Dockerfile") -> Path:
        """A file inside the context (e.g. the Dockerfile)."""
        path = self._check_inside(rel, what)
        if not path.is_file():
            raise ContextError(f"{what}: {rel} not found in the build context")
        return path

    def sources(self, pattern: str, what: str) -> list[Path]:
        """The context paths a COPY/ADD source names (wildcards allowed); ContextError if none."""
        self._check_inside(pattern.split("*")[0].split("?")[0] or ".", what)
        if any(ch in pattern for ch in "*?["):
            base = self.root
            matches = []
            for root, dirs, files in os.walk(base):
                for name in dirs + files:
                    full = os.path.join(root, name)
                    rel = os.path.relpath(full, base)
                    if fnmatch.fnmatchcase(
                        rel, posixpath.normpath(pattern.lstrip("/"))
                    ) and not self.ignored(rel):
                        matches.append(
                            self._check_inside(rel, what)
                            if not os.path.islink(full)
                            else Path(full)
                        )
            if not matches:
                raise ContextError(f"{what}: no source files were specified by {pattern!r}")
            return sorted(matches)
        path = self._check_inside(pattern, what)
        rel = os.path.relpath(path, self.root)
        if not path.exists() or (rel != "." and self.ignored(rel)):
            raise ContextError(f"{what}: {pattern} not found in the build context")
        return [path]

    def walk(self, path: Path):
        """(path, rel inside `path`) of `path` and everything under it not ignored, parents first."""
        yield path, ""
        if not path.is_dir() or path.is_symlink():
            return
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(dirs) + sorted(files):
                full = Path(root) / name
                ctx_rel = os.path.relpath(full, self.root)
                if self.ignored(ctx_rel):
                    if name in dirs:
                        dirs.remove(name)
                    continue
                yield full, os.path.relpath(full, path)

    def checksum(self, paths: list[Path]) -> str:
        """A digest of the sources' names, modes, link targets and contents (not times)."""
        digest = hashlib.sha256()
        for top in paths:
            for path, rel in self.walk(top):
                st = os.lstat(path)
                digest.update(f"{os.path.relpath(top, self.root)}|{rel}|{st.st_mode:o}\0".encode())
                if path.is_symlink():
                    digest.update(os.readlink(path).encode() + b"\0")
                elif path.is_file():
                    with open(path, "rb") as src:
                        for chunk in iter(lambda s=src: s.read(CHUNK), b""):
                            digest.update(chunk)
        return "sha256:" + digest.hexdigest()
