"""The store's files: an OCI image layout plus unpacked layers, a scratch area and a lock.

images_dir/oci-layout, index.json        OCI layout; tags are ref.name annotations
images_dir/blobs/sha256/<hex>            manifests, configs, layers as imported
images_dir/layers/<diff id hex>/         each layer unpacked once, shared read-only
images_dir/tmp/<pid>-<random>/           scratch of one import, renamed into place
images_dir/lock                          flock held around every change
"""

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path

from runtime import linux
from runtime.errors import ImageError

INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"


def _hex(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    if algorithm != "sha256" or len(hexdigest) != 64:
        raise ImageError(f"unsupported digest {digest!r}")
    return hexdigest


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Layout:
    """Paths and atomic file operations of one image store directory."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.blobs = self.root / "blobs" / "sha256"
        self.layers = self.root / "layers"
        self.tmp = self.root / "tmp"
        self.index_path = self.root / "index.json"

    def ensure(self) -> None:
        """Create the directories and the oci-layout marker if they are missing."""
        if not self.root.is_dir():
            # Layers hold images' setuid binaries and device nodes: host users stay out.
            with contextlib.suppress(FileExistsError):
                self.root.mkdir(parents=True, mode=0o700)
                os.chmod(self.root, 0o700)  # mkdir's mode passes through the umask
        for path in (self.blobs, self.layers, self.tmp):
            path.mkdir(parents=True, exist_ok=True)
        marker = self.root / "oci-layout"
        if not marker.exists():
            self.write_atomic(marker, json.dumps({"imageLayoutVersion": "1.0.0"}).encode())

    @contextlib.contextmanager
    def locked(self):
        """Hold the store's exclusive lock (other processes wait)."""
        self.ensure()
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def blob_path(self, digest: str) -> Path:
        """Where the blob with this digest lives."""
        return self.blobs / _hex(digest)

    def layer_path(self, diff_id: str) -> Path:
        """Where the layer with this diff id is unpacked."""
        return self.layers / _hex(diff_id)

    def read_blob(self, digest: str) -> bytes:
        """The bytes of a stored blob; ImageError if it is gone."""
        try:
            return self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise ImageError(f"blob {digest} is missing from the image store") from None

    def read_index(self) -> list[dict]:
        """The manifest descriptors of index.json (empty when the store is new)."""
        try:
            data = self.index_path.read_bytes()
        except FileNotFoundError:
            return []
        return json.loads(data).get("manifests") or []

    def write_index(self, descriptors: list[dict]) -> None:
        """Replace index.json atomically."""
        doc = {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": descriptors}
        self.write_atomic(self.index_path, json.dumps(doc, indent=1).encode(), sync=True)

    def write_atomic(self, path: Path, data: bytes, sync: bool = False) -> None:
        """Write a file through a temporary name and rename, so readers see old or new."""
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                if sync:
                    out.flush()
                    os.fsync(out.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    def scratch(self) -> str:
        """A fresh scratch directory on the store's file system (renames stay atomic)."""
        self.ensure()
        return tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=self.tmp)

    def flush(self, path) -> None:
        """Write staged files to disk before index.json names them (a crash leaves no empty files)."""
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            linux.syncfs(fd)
        finally:
            os.close(fd)

    def discard(self, path) -> None:
        """Remove a directory tree whether or not it exists."""
        shutil.rmtree(path, ignore_errors=True)

    def remove_layer(self, diff_id: str) -> None:
        """Remove an unpacked layer: rename it away first so no half layer stays visible."""
        path = self.layer_path(diff_id)
        if not path.exists():
            return
        doomed = tempfile.mkdtemp(prefix=f"{os.getpid()}-rm-", dir=self.tmp)
        os.rename(path, os.path.join(doomed, "layer"))
        self.discard(doomed)

    def sweep(self) -> None:
        """Remove scratch directories left by processes that died mid-import (lock held)."""
        if not self.tmp.exists():
            return
        for entry in self.tmp.iterdir():
            pid = entry.name.split("-", 1)[0]
            if pid.isdigit() and not _pid_alive(int(pid)) and int(pid) != os.getpid():
                self.discard(entry)
