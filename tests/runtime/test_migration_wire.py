"""The migration's host-to-host channel: files only when sealed, records that fail their
check refused (no CRIU needed: socket pairs stand in for the two hosts)."""

import contextlib
import os
import threading

import pytest

from runtime.container import precopy_wire, sealed


def test_a_growing_file_streams_whole_and_a_changed_byte_is_refused(tmp_path):
    """The final dump's pages go while CRIU writes them: chunks as the file grows, in sealed
    records the receiver checks (here a writer thread stands in for CRIU)."""
    import socket
    import time

    src = tmp_path / "pages-1.img"
    src.write_bytes(b"")
    done = threading.Event()

    def writer():
        with open(src, "ab") as f:
            for i in range(40):
                f.write(bytes([i]) * 100_003)
                f.flush()
                time.sleep(0.001)
        done.set()

    keys = os.urandom(16), os.urandom(16)
    for tamper in (False, True):
        a, b = socket.socketpair()
        with a, b:
            sent_raw = a
            if tamper:  # one byte changed on the way: its record fails the check

                class Flipping:
                    raw, seen = a, []

                    def sendall(self, data):
                        if len(data) > 1000 and not self.seen:
                            self.seen.append(1)
                            # XOR, not a fixed byte: a byte that already was 0xff (1 in 256
                            # records) left the stream unchanged and the test failing.
                            data = bytes(data[:500]) + bytes([data[500] ^ 0xFF]) + bytes(data[501:])
                        self.raw.sendall(data)

                sent_raw = Flipping()
            sender = precopy_wire.Channel(sealed.SealedSocket(sent_raw, *keys))
            receiver = precopy_wire.Channel(sealed.SealedSocket(b, *reversed(keys)))
            out = tmp_path / ("t" if tamper else "s")
            out.mkdir()
            got = {}

            def take(receiver=receiver, out=out, got=got, b=b):
                try:
                    got["path"] = receiver.recv_stream(receiver.recv(), out)
                except precopy_wire.WireError as err:
                    got["error"] = err
                    b.shutdown(socket.SHUT_RDWR)  # as a target that fails: the sender's write ends

            reader = threading.Thread(target=take)
            reader.start()
            if not tamper:
                threading.Thread(target=writer).start()
            with contextlib.suppress(OSError):
                sender.send_growing(src, "c/images/pages-1.img", done.is_set)
            reader.join(30)
            if tamper:
                assert "failed its check" in str(got["error"])
            else:
                assert got["path"].read_bytes() == src.read_bytes()
                assert src.stat().st_size == 40 * 100_003


def test_files_go_only_over_a_sealed_connection(tmp_path):
    """Before both hosts proved who they are, the channel carries no file either way."""
    import socket

    a, b = socket.socketpair()
    with a, b:
        (tmp_path / "f").write_bytes(b"x")
        with pytest.raises(precopy_wire.WireError, match="not sealed"):
            precopy_wire.Channel(a).send_file(tmp_path / "f", "f")
        with pytest.raises(precopy_wire.WireError, match="not sealed"):
            precopy_wire.Channel(b).recv_file({"path": "f", "size": 1}, tmp_path)


def test_a_record_replayed_or_out_of_order_is_refused():
    """Each record's number is its nonce: the same record again, or a later one first, fails."""
    import socket

    keys = os.urandom(16), os.urandom(16)
    for mangle in ("replay", "swap"):
        a, b = socket.socketpair()
        with a, b:
            records = []

            class Keep:
                kept = records

                def sendall(self, data):
                    self.kept.append(bytes(data))

            sender = sealed.SealedSocket(Keep(), *keys)
            sender.sendall(b"first")
            sender.sendall(b"second")
            order = [records[0], records[0]] if mangle == "replay" else records[::-1]
            a.sendall(b"".join(order))
            receiver = sealed.SealedSocket(b, *reversed(keys))
            if mangle == "replay":
                assert receiver.recv(100) == b"first"
            with pytest.raises(precopy_wire.WireError, match="failed its check"):
                receiver.recv(100)


def _host_key():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()

    def verify(msg, sig):
        try:
            key.public_key().verify(sig, msg)
        except Exception:  # noqa: BLE001 (InvalidSignature)
            return False
        return True

    return key.sign, verify


def _frames(sock):
    import json
    import struct

    head = b""
    while len(head) < 4:
        head += sock.recv(4 - len(head))
    (length,) = struct.unpack(">I", head)
    body = b""
    while len(body) < length:
        body += sock.recv(length - len(body))
    return json.loads(body)


@pytest.mark.parametrize("swap", ["target's key", "source's key"])
def test_a_key_swapped_on_the_path_is_refused(swap):
    """Someone on the path who puts their own X25519 key in either greeting (to read or write
    the sealed records) breaks a signature: the handshake fails before any file."""
    import json
    import socket
    import struct

    from runtime.container.sealed import Exchange

    src_sign, src_verify = _host_key()
    dst_sign, dst_verify = _host_key()
    src, near_src = socket.socketpair()
    near_dst, dst = socket.socketpair()
    intruder = Exchange()

    def pass_on(frm, to, rewrite):
        msg = _frames(frm)
        if rewrite and "kx" in msg:
            msg["kx"] = intruder.public
        data = json.dumps(msg).encode()
        to.sendall(struct.pack(">I", len(data)) + data)

    def path():
        with contextlib.suppress(OSError, ValueError):
            pass_on(near_dst, near_src, swap == "target's key")  # hello
            pass_on(near_src, near_dst, swap == "source's key")  # auth
            pass_on(near_dst, near_src, False)  # the target's answer

    errors = {}

    def target():
        try:
            precopy_wire.prove_target(precopy_wire.Channel(dst), "s1", "src", dst_sign, src_verify)
        except precopy_wire.WireError as err:
            errors["target"] = str(err)
            near_src.close()  # the target hangs up: the path has nothing more to pass on

    with src, near_src, near_dst, dst:
        threading.Thread(target=path, daemon=True).start()
        t = threading.Thread(target=target, daemon=True)
        t.start()
        ch = precopy_wire.Channel(src)
        with pytest.raises(precopy_wire.WireError, match="signature|closed"):
            precopy_wire.prove_source(ch, "s1", "src", src_sign, dst_verify)
        t.join(10)
    assert not isinstance(ch.sock, sealed.SealedSocket)
    if swap == "source's key":
        assert "does not verify" in errors["target"]


@pytest.mark.parametrize("length", [0, 15, sealed.RECORD + 17, 0xFFFFFFFF])
def test_a_record_of_impossible_length_is_refused_before_it_is_read(length):
    """A hostile peer announcing a huge (or too short) record gets no buffer of that size."""
    import socket
    import struct

    a, b = socket.socketpair()
    with a, b:
        a.sendall(struct.pack(">I", length))
        receiver = sealed.SealedSocket(b, os.urandom(16), os.urandom(16))
        with pytest.raises(precopy_wire.WireError, match="a record of"):
            receiver.recv(100)


def test_a_malformed_key_in_the_exchange_is_refused():
    """Not hex, or not a curve point of the right size: a clear WireError, not a crash."""
    mine = sealed.Exchange()
    for bad in ("zz" * 32, "00" * 31, ""):
        with pytest.raises(precopy_wire.WireError, match="malformed"):
            mine.keys(bad, b"salt", "s1", source=True)
