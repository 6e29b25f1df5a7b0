"""Layer tarballs: an overlay upper dir as a layer diff (whiteouts translated), gzip and digests."""

import gzip
import hashlib
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
# Empty files the runtime creates in the upper dir to bind-mount its own /etc files over.
MOUNT_PLACEHOLDERS = ("etc/hostname", "etc/hosts", "etc/resolv.conf")
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
CHUNK = 1 << 20


@dataclass
class LayerBlob:
    """A finished layer: its gzip blob file and the digests a manifest and config need."""

    path: Path
    digest: str
    size: int
    diff_id: str
    media_type: str = LAYER_GZIP

    def descriptor(self) -> dict:
        """The manifest entry, with the diff id kept alongside for the build state."""
        return {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
            "diff_id": self.diff_id,
        }


def _is_whiteout(st: os.stat_result) -> bool:
    # overlayfs marks a deleted lower file with a character device 0:0 in the upper dir.
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    for name in OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


def _info(tar: tarfile.TarFile, path: str, arcname: str) -> tarfile.TarInfo:
    info = tar.gettarinfo(path, arcname)
    # Numeric owners only: names mean nothing outside the container's /etc/passwd.
    info.uname = info.gname = ""
    return info


def _add(tar: tarfile.TarFile, path: str, arcname: str) -> None:
    if stat.S_ISSOCK(os.lstat(path).st_mode):
        return  # sockets are not content; Docker leaves them out of layers too
    info = _info(tar, path, arcname)
    if info.isreg():
        with open(path, "rb") as src:
            tar.addfile(info, src)
    else:
        tar.addfile(info)


def _whiteout_entry(tar: tarfile.TarFile, arcname: str, like: os.stat_result) -> None:
    info = tarfile.TarInfo(arcname)
    info.mode = 0o600
    info.mtime = int(like.st_mtime)
    tar.addfile(info)


def diff_from_upper(upper: Path, dest: Path) -> None:
    """Write the overlay `upper` dir as an uncompressed OCI layer tar at `dest`."""
    upper = str(upper)
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        links: dict[tuple[int, int], str] = {}
        for root, dirs, files in os.walk(upper):
            dirs.sort()
            rel_root = os.path.relpath(root, upper)
            if rel_root != "." and _is_opaque(root):
                st = os.lstat(root)
                _whiteout_entry(tar, f"{rel_root}/{OPAQUE_MARKER}", st)
            for name in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
                path = os.path.join(root, name)
                arc = name if rel_root == "." else f"{rel_root}/{name}"
                st = os.lstat(path)
                if arc in MOUNT_PLACEHOLDERS and stat.S_ISREG(st.st_mode) and st.st_size == 0:
                    continue  # the runtime's bind-mount targets, not the step's work
                if _is_whiteout(st):
                    parent = os.path.dirname(arc)
                    wh = f"{WHITEOUT_PREFIX}{name}"
                    _whiteout_entry(tar, f"{parent}/{wh}" if parent else wh, st)
                    continue
                if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    if key in links:
                        info = _info(tar, path, arc)
                        info.type = tarfile.LNKTYPE
                        info.linkname = links[key]
                        info.size = 0
                        tar.addfile(info)
                        continue
                    links[key] = arc
                _add(tar, path, arc)
            for name in list(dirs):
                path = os.path.join(root, name)
                if os.path.islink(path):
                    dirs.remove(name)
                    continue
                arc = name if rel_root == "." else f"{rel_root}/{name}"
                _add(tar, path, arc)


def finish_layer(tar_path: Path, dest_dir: Path) -> LayerBlob:
    """Gzip a layer tar reproducibly into `dest_dir`, computing its diff id and blob digest."""
    diff = hashlib.sha256()
    tmp = dest_dir / (tar_path.name + ".gz")
    with (
        open(tar_path, "rb") as raw,
        open(tmp, "wb") as out,
        gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=6) as gz,
    ):
        for chunk in iter(lambda: raw.read(CHUNK), b""):
            diff.update(chunk)
            gz.write(chunk)
    blob = hashlib.sha256()
    with open(tmp, "rb") as done:
        for chunk in iter(lambda: done.read(CHUNK), b""):
            blob.update(chunk)
    digest = "sha256:" + blob.hexdigest()
    final = dest_dir / digest.split(":", 1)[1]
    shutil.move(tmp, final)
    return LayerBlob(final, digest, final.stat().st_size, "sha256:" + diff.hexdigest())
