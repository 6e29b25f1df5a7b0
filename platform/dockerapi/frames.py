"""Docker's multiplexed stream format (non-TTY logs, attach and exec output).

Each frame: 1 byte stream (0 stdin, 1 stdout, 2 stderr), 3 zero bytes, a 4-byte big-endian
payload size, then the payload.
"""

import struct

STREAMS = {"stdin": 0, "stdout": 1, "stderr": 2}
MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"


def frame(stream: str, payload: bytes) -> bytes:
    """One frame of `payload` on `stream`."""
    return struct.pack(">BxxxL", STREAMS[stream], len(payload)) + payload


def unframe(data: bytes) -> list[tuple[int, bytes]]:
    """The frames of a multiplexed stream (for tests and clients)."""
    frames, offset = [], 0
    while offset + 8 <= len(data):
        stream, size = struct.unpack(">BxxxL", data[offset : offset + 8])
        frames.append((stream, data[offset + 8 : offset + 8 + size]))
        offset += 8 + size
    return frames
