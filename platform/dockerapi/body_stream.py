"""A request body handed from the Docker API listener's event loop to the view's thread.

The listener (dockerapi/listener.py) used to read a whole body into memory before Django saw
it; an 80 MiB `docker cp` upload was then held, joined, and copied again before the view wrote
it to UPLOAD_DIR. Now the loop puts each piece here as it arrives and the view reads it as a
file (Django's `request.read()`, or `request.body` for small JSON bodies): at most HIGH bytes
wait here at a time (the loop stops reading the socket until the view catches up), and the
view's own limits (dockerapi/images_archive.receive) are checked as it reads. A client that
leaves mid-body makes the view's read raise a Docker-style 400, so whatever it was writing
is removed by its own error path.
"""

import asyncio
import threading
from collections import deque

from dockerapi.errors import DockerError

HIGH = 8 << 20  # the loop waits for the reader past this many buffered bytes
LOW = 2 << 20  # and goes on once the reader has taken the buffer down to this


def client_left() -> DockerError:
    """The error a read raises when the client closed the connection in the body."""
    return DockerError(400, "the client closed the connection before the end of the request body")


class BodyStream:
    """File-like request body: fed by the event loop (put, end, fail), read by one thread."""

    def __init__(self, loop):
        self._loop = loop
        self._lock = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._ended = False
        self._closed = False  # the reader is done with it: later pieces are dropped
        self._error: Exception | None = None
        self._room = None  # an asyncio.Event the loop waits on while the buffer is full
        # What a blocked read still needs: the loop wakes it only once that much is here (or
        # at the end), not for every piece (one thread switch per megabyte, not per 32 KiB).
        self._needed = 0
        self.received = 0

    # The event loop's side.

    async def put(self, data: bytes) -> None:
        """Add one piece; wait while more than HIGH bytes are unread."""
        with self._lock:
            if self._closed or self._error is not None:
                return
            self._chunks.append(data)
            self._buffered += len(data)
            self.received += len(data)
            if self._buffered >= self._needed or self._buffered > HIGH:
                self._lock.notify()
            if self._buffered <= HIGH:
                return
            self._room = asyncio.Event()  # set by the reader (call_soon_threadsafe) at LOW
            room = self._room
        await room.wait()

    def end(self) -> None:
        """The body is complete."""
        with self._lock:
            self._ended = True
            self._lock.notify_all()

    def fail(self, error: Exception) -> None:
        """The body will not complete: a blocked or later read raises `error`."""
        with self._lock:
            if not self._ended and self._error is None:
                self._error = error
            self._lock.notify_all()
            self._wake_loop()

    @property
    def complete(self) -> bool:
        """Whether the whole body arrived."""
        return self._ended

    # The reading thread's side.

    def _wake_loop(self) -> None:
        if self._room is not None:
            room, self._room = self._room, None
            self._loop.call_soon_threadsafe(room.set)

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all that is left for -1 or None), fewer only at the end."""
        want = None if size is None or size < 0 else size
        pieces, got = [], 0
        with self._lock:
            while want is None or got < want:
                if not self._chunks:
                    if self._error is not None:
                        raise self._error
                    if self._ended or self._closed:
                        break
                    self._needed = float("inf") if want is None else want - got
                    self._lock.wait()
                    self._needed = 0
                    continue
                chunk = self._chunks.popleft()
                if want is not None and got + len(chunk) > want:
                    keep = want - got
                    self._chunks.appendleft(chunk[keep:])
                    chunk = chunk[:keep]
                pieces.append(chunk)
                got += len(chunk)
                self._buffered -= len(chunk)
                if self._buffered <= LOW:
                    self._wake_loop()
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def readline(self, size: int = -1) -> bytes:
        """One line (Django's multipart parser does not use it; kept for file-likeness)."""
        line = bytearray()
        while size is None or size < 0 or len(line) < size:
            byte = self.read(1)
            if not byte:
                break
            line += byte
            if byte == b"\n":
                break
        return bytes(line)

    def close(self) -> None:
        """The reader is done: drop what is buffered and anything that still comes."""
        with self._lock:
            self._closed = True
            self._chunks.clear()
            self._buffered = 0
            self._lock.notify_all()
            self._wake_loop()

    def seekable(self) -> bool:
        """Not seekable: Django then checks a body's size as it reads it."""
        return False

    def readable(self) -> bool:
        """A readable file."""
        return True
