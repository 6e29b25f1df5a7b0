"""The direct channel of a pre-copy migration: one TCP connection from source to target host.

Both ends prove who they are before anything else, each signing the other's fresh nonce and
its own ephemeral X25519 key with its host's Ed25519 key (the caller passes `sign` and
`verify`; the agent's host keys, whose public halves the control plane holds). From then on
every byte is in AES-GCM records under the keys both derived (runtime.container.sealed), so
nobody on the path can change, drop or add a byte. Frames: a 4-byte length and a JSON header;
a file's header is followed by its bytes. Paths are relative to the receiver's staging
directory and checked there.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path

from runtime.container.sealed import Exchange, SealedSocket, WireError

CHUNK = 1 << 20
MAX_HEADER = 16 << 20
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_LENGTH = struct.Struct(">I")
_NONCE = re.compile(r"^[0-9a-f]{32}$")


class PeerFailed(WireError):
    """The peer said it failed (and cleaned up after itself)."""


def _proof(role: str, session: str, nonce: str, exchange: str) -> bytes:
    return f"berth-precopy-{role}\n{session}\n{nonce}\n{exchange}".encode()


class Channel:
    """Framed messages and files over a connected socket."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.sent = 0

    def close(self) -> None:
        """Close the connection."""
        self.sock.close()

    def send(self, header: dict) -> None:
        """One JSON message."""
        data = json.dumps(header).encode()
        self.sock.sendall(_LENGTH.pack(len(data)) + data)

    def recv(self) -> dict:
        """The next JSON message (WireError when the peer closed or sent garbage)."""
        (length,) = _LENGTH.unpack(self._exactly(_LENGTH.size))
        if length > MAX_HEADER:
            raise WireError(f"a message of {length} bytes is too big")
        try:
            header = json.loads(self._exactly(length))
        except ValueError:
            raise WireError("the peer sent a message that is not JSON") from None
        if not isinstance(header, dict):
            raise WireError("the peer sent a message that is not an object")
        if header.get("t") == "failed":
            raise PeerFailed(str(header.get("error") or "the peer failed"))
        return header

    def _exactly(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(min(n - len(buf), CHUNK))
            if not chunk:
                raise WireError("the peer closed the connection")
            buf += chunk
        return bytes(buf)

    def send_file(self, path: Path, name: str) -> int:
        """A file under its relative `name`; returns its size."""
        self._sealed()
        size = path.stat().st_size
        self.send({"t": "file", "path": name, "size": size})
        left = size
        with open(path, "rb", buffering=0) as f:
            while left and (chunk := f.read(min(left, CHUNK))):
                self.sock.sendall(chunk)
                left -= len(chunk)
        if left:
            raise WireError(f"{path} shrank while it was sent")
        self.sent += size
        return size

    def send_growing(self, path: Path, name: str, finished: Callable[[], bool]) -> int:
        """A file another process is still writing (CRIU's pages during a dump), sent as it
        grows: chunks, each with its length, until `finished()` said the writer is done and
        the end is read; then an empty chunk. Returns its size."""
        self._sealed()
        self.send({"t": "stream", "path": name})
        size = 0
        with open(path, "rb", buffering=0) as f:
            while True:
                done = finished()  # asked before the read: all written by then is read now
                chunk = f.read(CHUNK)
                if chunk:
                    self.sock.sendall(_LENGTH.pack(len(chunk)) + chunk)
                    size += len(chunk)
                elif done:
                    break
                else:
                    time.sleep(0.001)  # the writer is ahead of nothing: let it write
        self.sock.sendall(_LENGTH.pack(0))
        self.sent += size
        return size

    def send_tree(self, top: Path, where: Path, skip: frozenset = frozenset()) -> int:
        """Every file and symlink under `where`, named relative to `top`, but those named in
        `skip` (sent already); returns the bytes."""
        total = 0
        for item in sorted(where.iterdir()):
            name = str(item.relative_to(top))
            if name in skip:
                continue
            if item.is_symlink():
                self.send({"t": "link", "path": name, "target": os.readlink(item)})
            elif item.is_file():
                total += self.send_file(item, name)
            elif item.is_dir():
                total += self.send_tree(top, item, skip)
        return total

    def recv_file(self, header: dict, stage: Path) -> Path:
        """Store the file announced by `header` under `stage`."""
        self._sealed()
        target = safe_path(stage, header.get("path"))
        size = header.get("size")
        if not isinstance(size, int) or size < 0:
            raise WireError(f"bad size for {header.get('path')!r}")
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        left = size
        buf = memoryview(bytearray(CHUNK))
        with open(target, "wb", buffering=0) as out:
            while left:
                got = self._fill(buf, min(left, CHUNK))
                out.write(buf[:got])
                left -= got
        return target

    def recv_stream(self, header: dict, stage: Path) -> Path:
        """Store a file sent as it grew (send_growing) under `stage`."""
        self._sealed()
        target = safe_path(stage, header.get("path"))
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        buf = memoryview(bytearray(CHUNK))
        with open(target, "wb", buffering=0) as out:
            while length := _LENGTH.unpack(self._exactly(_LENGTH.size))[0]:
                if length > CHUNK:
                    raise WireError(f"a chunk of {length} bytes in {header['path']}")
                out.write(buf[: self._fill(buf, length)])
        return target

    def _sealed(self) -> None:
        # Files only after both hosts proved who they are and sealed the connection.
        if not isinstance(self.sock, SealedSocket):
            raise WireError("the connection is not sealed: the peers have not proved who they are")

    def _fill(self, buf: memoryview, n: int) -> int:
        got = 0
        while got < n:
            count = self.sock.recv_into(buf[got:n])
            if not count:
                raise WireError("the peer closed the connection in the middle of a file")
            got += count
        return got

    def recv_link(self, header: dict, stage: Path) -> None:
        """A pre-dump's `parent` symlink; it must point inside `stage`."""
        where = safe_path(stage, header.get("path"))
        target = str(header.get("target") or "")
        if where.name != "parent" or target.startswith("/"):
            raise WireError(f"unexpected link {header.get('path')!r}")
        resolved = Path(os.path.normpath(where.parent / target))
        if Path(os.path.normpath(stage)) not in resolved.parents:
            raise WireError(f"link {header['path']} points out of the checkpoint")
        where.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.symlink(target, where)


def safe_path(stage: Path, name) -> Path:
    """`stage`/`name` if `name` is a relative path of plain parts (WireError otherwise)."""
    parts = str(name or "").split("/")
    if not 1 <= len(parts) <= 4 or not all(_PART.match(p) for p in parts):
        raise WireError(f"unexpected path {name!r}")
    return stage.joinpath(*parts)


def listen(address: str = "") -> socket.socket:
    """A listening socket on `address` (every address, IPv4 and IPv6, when empty), on a port
    the kernel picks."""
    if not address and socket.has_dualstack_ipv6():
        return socket.create_server(("", 0), family=socket.AF_INET6, dualstack_ipv6=True)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return socket.create_server((address or "0.0.0.0", 0), family=family)


def connect(address: str, port: int, timeout: float) -> Channel:
    """A channel to the target's listener."""
    sock = socket.create_connection((address, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return Channel(sock)


def accept(listener: socket.socket, timeout: float) -> Channel:
    """The source's connection (WireError if none comes within `timeout`)."""
    listener.settimeout(timeout)
    try:
        sock, _ = listener.accept()
    except TimeoutError:
        raise WireError(f"the source host did not connect within {timeout:g} s") from None
    sock.settimeout(timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return Channel(sock)


Sign = Callable[[bytes], bytes]
Verify = Callable[[bytes, bytes], bool]


def prove_source(ch: Channel, session: str, host: str, sign: Sign, verify_target: Verify) -> None:
    """Source side: sign the target's nonce and our key, check the target's signature of our
    nonce and its key, then seal the connection."""
    hello = ch.recv()
    nonce = secrets.token_hex(16)
    theirs, their_key = str(hello.get("nonce") or ""), str(hello.get("kx") or "")
    if hello.get("t") != "hello" or not _NONCE.match(theirs):
        raise WireError("the target did not greet as a Berth host")
    mine = Exchange()
    sig = sign(_proof("source", session, theirs, mine.public)).hex()
    ch.send(
        {
            "t": "auth",
            "host": host,
            "session": session,
            "nonce": nonce,
            "kx": mine.public,
            "sig": sig,
        }
    )
    answer = ch.recv()
    if not _checks(verify_target, _proof("target", session, nonce, their_key), answer.get("sig")):
        raise WireError("the target host's signature does not verify")
    _seal(ch, mine, their_key, theirs + nonce, session, source=True)


def prove_target(ch: Channel, session: str, host: str, sign: Sign, verify_source: Verify) -> None:
    """Target side: check the source's signature of our nonce and its key, sign the source's
    nonce and our key, then seal the connection."""
    nonce = secrets.token_hex(16)
    mine = Exchange()
    ch.send({"t": "hello", "nonce": nonce, "kx": mine.public})
    auth = ch.recv()
    theirs, their_key = str(auth.get("nonce") or ""), str(auth.get("kx") or "")
    if auth.get("t") != "auth" or auth.get("session") != session or not _NONCE.match(theirs):
        raise WireError("the peer is not the source of this migration")
    if auth.get("host") != host:
        raise WireError(f"the peer says it is host {auth.get('host')!r}, not {host!r}")
    if not _checks(verify_source, _proof("source", session, nonce, their_key), auth.get("sig")):
        raise WireError(f"the signature of host {host!r} does not verify")
    ch.send({"t": "auth", "sig": sign(_proof("target", session, theirs, mine.public)).hex()})
    _seal(ch, mine, their_key, nonce + theirs, session, source=False)


def _seal(ch: Channel, mine: Exchange, their_key: str, nonces: str, session, source) -> None:
    """Both sides' keys from the exchange (the target's nonce first in the salt)."""
    send, recv = mine.keys(their_key, bytes.fromhex(nonces), session, source)
    ch.sock = SealedSocket(ch.sock, send, recv)


def _checks(verify: Verify, message: bytes, sig) -> bool:
    try:
        return bool(verify(message, bytes.fromhex(str(sig or ""))))
    except ValueError:
        return False
