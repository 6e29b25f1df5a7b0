"""Berth's Docker API listener: the Docker Engine API on its own port (2375 by default).

An ASGI server cannot upgrade a connection to a raw stream, which `docker run` without -d,
`docker attach` and `docker exec` need (`Upgrade: tcp`, then `101 UPGRADED`). This small
HTTP/1.1 server, on h11, hands every ordinary request to Django's ASGI application in this
process (the same URLs, token check, gate and audit as the web server's /v1.NN/ paths; the
Docker API's own paths through its sync handler in one worker thread, dockerapi/sync_answer.py) and
takes the two hijacked calls itself: hijack.prepare() decides them through the gate, then
hijack_relay.Relay carries the streams to the host agent's session.

The body of a Docker API call is not read ahead: it is handed to the view as it arrives
(dockerapi/body_stream.py), so a `docker cp` upload, a build context or an image archive goes
from the socket to UPLOAD_DIR in one pass, within the view's own size limits. A body the
answer did not need is read and dropped for a little while after the answer (DRAIN_BYTES,
DRAIN_SECONDS), so that the client reads the answer rather than a reset connection.
"""

import asyncio
import contextlib
import io
import ipaddress
import logging
import signal
import ssl
from urllib.parse import unquote

import h11
from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler, ASGIRequest

from dockerapi import (
    body_stream,
    errors,
    hijack,
    hijack_relay,
    router,
    sync_answer,
    tls,
    tls_stream,
)

log = logging.getLogger(__name__)
READ_CHUNK = 65536
# Bodies read ahead (hijacked calls and the web's own paths) are small. The Docker API's own
# calls stream theirs to the view, whose limits apply (4 GiB for archives, 8 MiB for JSON).
MAX_BODY = 256 * 1024 * 1024
DRAIN_BYTES = 16 << 20  # the most of an unneeded body read (and dropped) after the answer
DRAIN_SECONDS = 5.0
IDLE_SECONDS = 300  # a kept-alive connection with no request for this long is closed
DETACH_PRIMER = b"\x00"  # sent with the 101 of a TTY stream with input (see _hijack)
_VERSIONED = "/v"


class BodyTooLarge(Exception):
    """The client sent more than MAX_BODY bytes."""


def split_path(path: str) -> tuple[str | None, str]:
    """('1.47', 'containers/x/attach') for /v1.47/containers/x/attach, (None, '_ping') unversioned."""
    path = unquote(path)
    if path.startswith(_VERSIONED):
        version, _, rest = path[len(_VERSIONED) :].partition("/")
        return version, rest
    return None, path.lstrip("/")


def _wants_upgrade(request: h11.Request) -> bool:
    headers = {name.lower(): value.lower() for name, value in request.headers}
    return headers.get(b"upgrade") == b"tcp" and b"upgrade" in headers.get(b"connection", b"")


class Connection:
    """One client connection: requests in turn (keep-alive), or one upgraded stream."""

    def __init__(self, app, reader, writer, answers=None):
        self.app = app
        self.answers = answers  # sync_answer.SyncAnswers for the Docker API's paths
        self.reader, self.writer = reader, writer
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        self.peer = writer.get_extra_info("peername") or ("", 0)
        self.sockname = writer.get_extra_info("sockname") or ("", 0)
        self.tls = writer.get_extra_info("ssl_object") is not None
        self.client_certificate = tls.peer_identity(writer)

    async def serve(self) -> None:
        """Serve requests until the client leaves or the connection is upgraded."""
        try:
            while True:
                request = await self._next(timeout=IDLE_SECONDS)
                if not isinstance(request, h11.Request):
                    return
                method = request.method.decode("ascii", "replace")
                path, _, query = request.target.decode("latin-1").partition("?")
                version, rest = split_path(path)
                hijacked = _wants_upgrade(request) and hijack.is_hijack(method, rest)
                streamed = (
                    not hijacked
                    and self.answers is not None
                    and sync_answer.is_docker_path(unquote(path))
                )
                body = None
                if not streamed:
                    try:
                        body = await self._body()
                    except BodyTooLarge:
                        await self._error(
                            413, f"request body too large: Berth takes at most {MAX_BODY} bytes"
                        )
                        return
                if hijacked:
                    await self._hijack(request, body, version, rest)
                    return
                await self._forward(request, body)
                if self.h11.our_state is h11.DONE and self.h11.their_state is h11.SEND_BODY:
                    await self._drain()  # at the body's end both are DONE; past its bounds not
                if self.h11.our_state is not h11.DONE or self.h11.their_state is not h11.DONE:
                    return  # closing, or a response cut short (the client left mid-stream)
                self.h11.start_next_cycle()
        except (h11.ProtocolError, ConnectionError, TimeoutError) as err:
            # A LocalProtocolError too: an answer to a client whose body broke off mid-way.
            log.debug("docker api connection from %s ended: %s", self.peer, err)
        finally:
            with contextlib.suppress(Exception):
                self.writer.close()

    async def _next(self, timeout: float | None = None):
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that
                # comes as the read completes (the body's pump then outlives its call), and it
                # makes a task per read.
                async with asyncio.timeout(timeout):
                    data = await self.reader.read(READ_CHUNK)
                self.h11.receive_data(data)
                continue
            return event

    async def _body(self) -> bytes:
        chunks, size = [], 0
        while True:
            event = await self._next()
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_BODY:
                    raise BodyTooLarge
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(chunks)
            else:
                raise h11.RemoteProtocolError("connection closed in the request body")

    async def _pump(self, stream: body_stream.BodyStream) -> bool:
        """Feed the request body to `stream` as it arrives; False when the client left first."""
        try:
            while True:
                event = await self._next(timeout=IDLE_SECONDS)
                if isinstance(event, h11.Data):
                    await stream.put(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    stream.end()
                    return True
                else:
                    break
        except (h11.RemoteProtocolError, ConnectionError, TimeoutError) as err:
            log.debug("docker api: request body from %s broke off: %s", self.peer, err)
        stream.fail(body_stream.client_left())
        return False

    async def _drain(self) -> None:
        """Read and drop the rest of a body the answer did not need, up to its end (the
        connection then takes the next request), DRAIN_BYTES or DRAIN_SECONDS."""
        loop = asyncio.get_running_loop()
        deadline, dropped = loop.time() + DRAIN_SECONDS, 0
        while dropped <= DRAIN_BYTES and loop.time() < deadline:
            event = await self._next(timeout=deadline - loop.time())
            if not isinstance(event, h11.Data):
                return
            dropped += len(event.data)

    async def _send(self, event) -> None:
        data = self.h11.send(event)
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def _error(self, status: int, message: str) -> None:
        body = errors.response(status, message).content
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"api-version", router.MAX_VERSION.encode()),
            (b"server", b"Berth"),
        ]
        with contextlib.suppress(h11.LocalProtocolError):
            await self._send(h11.Response(status_code=status, headers=headers))
            await self._send(h11.Data(data=body))
            await self._send(h11.EndOfMessage())

    def _scope(self, request: h11.Request) -> dict:
        path, _, query = request.target.partition(b"?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": request.http_version.decode(),
            "method": request.method.decode("ascii", "replace"),
            "scheme": "https" if self.tls else "http",
            "path": unquote(path.decode("latin-1")),
            "raw_path": path,
            "query_string": query,
            "root_path": "",
            "headers": [(name.lower(), value) for name, value in request.headers],
            "client": tuple(self.peer[:2]),
            "server": tuple(self.sockname[:2]),
        }
        if self.client_certificate:
            # Set only here, from the verified handshake: auth.authenticate() trusts this key.
            scope[tls.SCOPE_KEY] = self.client_certificate
        return scope

    async def _forward(self, request: h11.Request, body: bytes | None) -> None:
        """An ordinary call: Django's ASGI application answers it, streamed back as it comes.

        `body` None: a Docker API call whose body is still to come, streamed to its view."""
        delivered = False
        disconnected = asyncio.Event()
        stream = None if body is not None else body_stream.BodyStream(asyncio.get_running_loop())

        async def receive():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start":
                await self._send(
                    h11.Response(status_code=message["status"], headers=message.get("headers", []))
                )
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    await self._send(h11.Data(data=message["body"]))
                if not message.get("more_body"):
                    await self._send(h11.EndOfMessage())

        async def watch_client():
            if stream is not None and not await self._pump(stream):
                disconnected.set()
                return
            # Only an end of input matters here (Docker clients do not pipeline requests).
            data = await self.reader.read(READ_CHUNK)
            if data:
                self.h11.receive_data(data)
            else:
                disconnected.set()

        watcher = asyncio.ensure_future(watch_client())
        scope = self._scope(request)
        try:
            if stream is not None:
                await self.answers.answer(scope, stream, send, disconnected)
            else:
                await self.app(scope, receive, send)
        finally:
            if not watcher.done():
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            if stream is not None and not stream.complete:
                stream.fail(body_stream.client_left())  # a view still reading is not left waiting

    async def _hijack(self, request: h11.Request, body: bytes, version, rest) -> None:
        """attach / exec start: decide, answer 101 UPGRADED, then relay the streams."""
        scope = self._scope(request)
        django_request = ASGIRequest(scope, io.BytesIO(body))
        try:
            plan = await sync_to_async(hijack.prepare, thread_sensitive=False)(
                django_request, version, rest
            )
        except Exception as exc:
            known = errors.from_exception(exc)
            if known is None:
                log.error("docker api: unhandled error on %s", rest, exc_info=exc)
                known = errors.DockerError(500, "internal error in Berth; see the server log")
            await self._error(known.status, known.message)
            return
        upgraded = self.h11.send(
            h11.InformationalResponse(
                status_code=101,
                headers=[
                    (b"content-type", plan.media_type.encode()),
                    (b"connection", b"Upgrade"),
                    (b"upgrade", b"tcp"),
                    (b"api-version", router.MAX_VERSION.encode()),
                    (b"server", b"Berth"),
                ],
                reason=b"UPGRADED",
            )
        )
        if plan.detach_keys:
            # The docker CLI finds the detach keys itself, but over TCP it only notices that it
            # did when bytes came with the 101 (it then reads through its own buffer instead of
            # net.TCPConn.ReadFrom, which wraps the "read escape sequence" error it looks for);
            # otherwise it half-closes and waits for the container to exit. A NUL, which
            # terminals ignore, in the same write as the 101 lets `docker attach` and
            # `docker run -it` return on ctrl-p ctrl-q.
            upgraded += DETACH_PRIMER
        self.writer.write(upgraded)
        await self.writer.drain()
        trailing, _closed = self.h11.trailing_data
        await hijack_relay.Relay(plan, self.reader, self.writer, bytes(trailing)).run()


def check_bind(host: str, tls_on: bool = False) -> None:
    """Refuse an address off this machine without TLS: tokens would cross it in clear text."""
    if tls_on:
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ValueError(
            f"refusing to serve the Docker API on {host}: API tokens would cross the network "
            "unencrypted. Bind to 127.0.0.1, or serve TLS (--tls-cert, --tls-key)."
        )


async def serve(host: str, port: int, ready=None, ssl_context=None) -> None:
    """Listen on host:port until SIGTERM or SIGINT; then close every connection and return."""
    app = ASGIHandler()
    answers = sync_answer.SyncAnswers(app)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    connections: set[asyncio.Task] = set()

    async def handle(reader, writer):
        task = asyncio.current_task()
        connections.add(task)
        try:
            if ssl_context is not None:
                try:
                    stream = await tls_stream.accept(reader, writer, ssl_context)
                except (ssl.SSLError, ConnectionError, TimeoutError) as err:
                    log.info(
                        "docker api: TLS handshake from %s failed: %s",
                        writer.get_extra_info("peername"),
                        err,
                    )
                    writer.close()
                    return
                reader = writer = stream
            await Connection(app, reader, writer, answers).serve()
        finally:
            connections.discard(task)

    # TLS is done in tls_stream, not by asyncio: the CLI half-closes hijacked connections.
    server = await asyncio.start_server(handle, host, port, limit=READ_CHUNK)
    log.info("Berth's Docker API listens on %s:%s", host, port)
    if ready is not None:
        ready()
    try:
        await stop.wait()
    finally:
        server.close()
        # Attached clients are cut off; their host sessions end with the relay (term.close).
        for task in list(connections):
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        answers.pool.shutdown(wait=False, cancel_futures=True)
