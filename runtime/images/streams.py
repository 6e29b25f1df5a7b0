"""Stream helpers: hash while reading, tee into a blob file, detect and undo compression."""

import bz2
import gzip
import hashlib
import lzma
import tarfile
import zlib

from runtime.errors import ImageError

CHUNK = 1 << 20
TAIL = 64 * 1024

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
)


class HashingReader:
    """A read-only file object that hashes (and optionally copies) every byte it passes on.

    It keeps the last TAIL bytes so a tar reader's end-of-archive block can be checked after
    the tar library has read it.
    """

    def __init__(self, raw, sink=None):
        self.raw = raw
        self.sink = sink
        self.hash = hashlib.sha256()
        self.size = 0
        self._tail = bytearray()

    def read(self, n: int = -1) -> bytes:
        """Read up to n bytes from the wrapped stream, hashing them."""
        data = self.raw.read(n)
        if data:
            self.hash.update(data)
            self.size += len(data)
            if self.sink is not None:
                self.sink.write(data)
            self._tail += data
            if len(self._tail) > 2 * TAIL:
                del self._tail[:-TAIL]
        return data

    def block_at(self, offset: int, length: int) -> bytes | None:
        """The bytes at absolute `offset` if they were read recently, else None."""
        start = self.size - len(self._tail)
        if offset < start or offset + length > self.size:
            return None
        return bytes(self._tail[offset - start : offset - start + length])

    def drain(self) -> None:
        """Read the rest of the stream so the digest covers all of it."""
        while self.read(CHUNK):
            pass

    @property
    def digest(self) -> str:
        """The stream's digest so far, as "sha256:<hex>"."""
        return "sha256:" + self.hash.hexdigest()


def sniff(head: bytes) -> str | None:
    """Name the compression that `head` (the first bytes of a stream) starts with, or None."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


def decompressor(fileobj, kind: str | None, what: str):
    """Wrap `fileobj` so reading it yields the uncompressed bytes."""
    if kind is None:
        return fileobj
    if kind == "gzip":
        return gzip.GzipFile(fileobj=fileobj, mode="rb")
    if kind == "bzip2":
        return bz2.BZ2File(fileobj, mode="rb")
    if kind == "xz":
        return lzma.LZMAFile(fileobj, mode="rb")
    raise ImageError(f"{what}: {kind} compression is not supported (use gzip or plain tar)")


# Errors that a corrupt or truncated archive or compressed stream raises while it is read.
STREAM_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error, lzma.LZMAError, tarfile.TarError)
