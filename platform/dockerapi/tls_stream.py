"""TLS for the listener's connections, on an ssl.SSLObject over the plain asyncio stream.

asyncio's own TLS transport shuts the connection down as soon as the client's close_notify
arrives, but the docker CLI half-closes a hijacked connection (Go's tls.Conn.CloseWrite sends
close_notify) when its input ends, and then reads the rest of the output: `docker run` without
-i, `docker exec` without input, `docker logs` on an attach. Over this stream, like Docker's
daemon, Berth reads the close_notify as the end of the client's input and goes on writing.
It is the reader and the writer the listener and the relay use (read, at_eof, write, drain,
close, get_extra_info); everything runs on the event loop, so the SSLObject is never used from
two threads.
"""

import asyncio
import contextlib
import ssl

READ_CHUNK = 65536


class TLSStream:
    """One server-side TLS connection: a reader and a writer in one object."""

    def __init__(self, reader, writer, context: ssl.SSLContext):
        self.raw_reader, self.raw_writer = reader, writer
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.eof = False

    async def handshake(self) -> None:
        """Complete the TLS handshake (the client certificate is verified here)."""
        while True:
            try:
                self.tls.do_handshake()
                self._flush()
                await self.raw_writer.drain()
                return
            except ssl.SSLWantReadError:
                self._flush()
                await self.raw_writer.drain()
                if not await self._fill():
                    raise ConnectionResetError("the client left during the TLS handshake") from None

    async def _fill(self) -> bool:
        data = await self.raw_reader.read(READ_CHUNK)
        if not data:
            self.incoming.write_eof()
            return False
        self.incoming.write(data)
        return True

    def _flush(self) -> None:
        data = self.outgoing.read()
        if data:
            self.raw_writer.write(data)

    async def read(self, n: int = READ_CHUNK) -> bytes:
        """Up to n bytes of the client's data; b"" at its close_notify or end of connection."""
        while not self.eof:
            try:
                data = self.tls.read(n)
            except ssl.SSLWantReadError:
                self._flush()  # TLS 1.3 may have records to answer
                if not await self._fill():
                    self.eof = True
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                self.eof = True
                break
            self._flush()
            if not data:
                self.eof = True
            return data
        return b""

    def at_eof(self) -> bool:
        """Whether the client's side has ended."""
        return self.eof

    def write(self, data: bytes) -> None:
        """Encrypt and queue data for the client (after its close_notify too)."""
        if data:
            self.tls.write(data)
            self._flush()

    async def drain(self) -> None:
        """Wait until the transport's buffer has room."""
        await self.raw_writer.drain()

    def close(self) -> None:
        """Send close_notify and close the connection."""
        with contextlib.suppress(ssl.SSLError, ValueError):
            self.tls.unwrap()
        with contextlib.suppress(Exception):
            self._flush()
        self.raw_writer.close()

    def get_extra_info(self, name: str, default=None):
        """As StreamWriter.get_extra_info; "ssl_object" is this connection's SSLObject."""
        if name == "ssl_object":
            return self.tls
        return self.raw_writer.get_extra_info(name, default)


async def accept(reader, writer, context: ssl.SSLContext, timeout: float = 30) -> TLSStream:
    """The TLS stream of a new connection, once its handshake is done."""
    stream = TLSStream(reader, writer, context)
    await asyncio.wait_for(stream.handshake(), timeout)
    return stream
