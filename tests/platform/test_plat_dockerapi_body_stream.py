"""The Docker API listener streams a call's body to its view (dockerapi/body_stream.py).

A real listener Connection on a loopback socket, with a stand-in for the pooled Django
handler whose worker thread writes the body to UPLOAD_DIR through the views' own
images_archive.receive(): the body arrives whole and in order (Content-Length and chunked),
never more than the stream's high-water mark waits in memory, a body past the view's limit
is a 413 the client reads with nothing left in UPLOAD_DIR (and the connection serves the next
call), and a client that leaves mid-body leaves no file either.
"""

import asyncio
import hashlib
import json
import threading
from types import SimpleNamespace

import pytest
from dockerapi import body_stream, errors, listener
from dockerapi.images_archive import receive

LIMIT = 6 << 20


class Answers:
    """The part of sync_answer.SyncAnswers the listener uses: answer(scope, body, send, ...)."""

    def __init__(self):
        self.outcomes = []  # per call: ("stored", size, sha256) or ("refused", status)
        self.peak = 0  # the most bytes the stream held unread while the view read
        self.done = threading.Event()

    def _view(self, stream):
        original = stream.read

        def read(size=-1):
            self.peak = max(self.peak, stream._buffered)
            return original(size)

        call = SimpleNamespace(request=SimpleNamespace(read=read))
        try:
            path, size = receive(call, "bodytest", LIMIT)
        except errors.DockerError as exc:
            self.outcomes.append(("refused", exc.status))
            return exc.status, {"message": exc.message}
        finally:
            self.done.set()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        path.unlink()
        self.outcomes.append(("stored", size, digest))
        return 200, {"size": size, "sha256": digest}

    async def answer(self, scope, body, send, disconnected):
        if scope["path"].endswith("/_ping"):  # answers without reading its body
            status, data = 200, {"ok": True}
        else:
            status, data = await asyncio.to_thread(self._view, body)
        payload = json.dumps(data).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(payload)),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


@pytest.fixture
def uploads(settings, tmp_path):
    settings.UPLOAD_DIR = tmp_path / "uploads"
    return settings.UPLOAD_DIR


async def _serve(answers):
    async def handle(reader, writer):
        await listener.Connection(None, reader, writer, answers).serve()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, limit=listener.READ_CHUNK)
    return server, server.sockets[0].getsockname()[1]


async def _response(reader) -> tuple[int, dict]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    length = next(int(x.split(":")[1]) for x in lines if x.lower().startswith("content-length"))
    return int(lines[0].split()[1]), json.loads(await reader.readexactly(length))


def _head(path: str, length: int | None = None) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return f"PUT {path} HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n".encode()


def _blob(size: int) -> bytes:
    return hashlib.sha256(b"seed").digest() * (size // 32)


def test_a_body_reaches_the_view_whole_and_bounded(uploads, monkeypatch):
    # A small high-water mark, so that the 5 MiB body makes the listener wait for the view.
    monkeypatch.setattr(body_stream, "HIGH", 256 << 10)
    monkeypatch.setattr(body_stream, "LOW", 64 << 10)
    answers = Answers()
    body = _blob(5 << 20)

    async def main():
        server, port = await _serve(answers)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(_head("/v1.47/containers/x/archive", len(body)))
            for at in range(0, len(body), 1 << 20):
                writer.write(body[at : at + (1 << 20)])
                await writer.drain()
            first = await _response(reader)
            # The same connection, chunked this time.
            writer.write(_head("/v1.47/containers/x/archive"))
            for at in range(0, len(body), 3 << 20):
                part = body[at : at + (3 << 20)]
                writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            writer.write(b"0\r\n\r\n")
            second = await _response(reader)
            writer.close()
            return first, second

    first, second = asyncio.run(main())
    digest = hashlib.sha256(body).hexdigest()
    assert first == (200, {"size": len(body), "sha256": digest})
    assert second == (200, {"size": len(body), "sha256": digest})
    # At most the mark and one socket read wait unread (the view reads 1 MiB at a time).
    assert answers.peak <= (256 << 10) + (1 << 20)
    assert list(uploads.iterdir()) == []


def test_too_much_is_a_413_the_client_reads_and_no_file_is_left(uploads):
    answers = Answers()
    body = _blob(LIMIT + (2 << 20))

    async def main():
        server, port = await _serve(answers)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(_head("/v1.47/containers/x/archive", len(body)) + body)
            refused = await _response(reader)
            # The rest of the body was read and dropped: the connection takes the next call.
            writer.write(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
            ping = await _response(reader)
            writer.close()
            return refused, ping

    refused, ping = asyncio.run(main())
    assert refused[0] == 413 and "limit" in refused[1]["message"]
    assert ping == (200, {"ok": True})
    assert answers.outcomes == [("refused", 413)]
    assert list(uploads.iterdir()) == []


def test_a_client_that_leaves_mid_body_leaves_no_file(uploads):
    answers = Answers()

    async def main():
        server, port = await _serve(answers)
        async with server:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(_head("/v1.47/containers/x/archive", 4 << 20) + _blob(1 << 20))
            await writer.drain()
            await asyncio.sleep(0)  # the first megabyte may or may not be read yet
            writer.close()
            await asyncio.to_thread(answers.done.wait, 30)

    asyncio.run(main())
    assert answers.outcomes == [("refused", 400)]
    assert list(uploads.iterdir()) == []


def test_a_read_takes_what_it_asks_for_across_pieces():
    loop = asyncio.new_event_loop()
    try:
        stream = body_stream.BodyStream(loop)

        async def feed():
            for piece in (b"ab", b"cde", b"f"):
                await stream.put(piece)
            stream.end()

        loop.run_until_complete(feed())
        assert stream.read(4) == b"abcd"
        assert stream.read() == b"ef"
        assert stream.read(10) == b""
        failed = body_stream.BodyStream(loop)
        failed.fail(body_stream.client_left())
        with pytest.raises(errors.DockerError) as err:
            failed.read(1)
        assert err.value.status == 400
    finally:
        loop.close()
