"""Docker API calls answered in one worker thread: Django's middleware chain in sync mode.

Django's ASGIHandler runs each sync middleware and the view through their own thread hops
(sync_to_async, then async_to_sync back for the URL resolver, then sync_to_async again for
the view), each in a new thread per request, so every call opened its own database and
broker connections. Under load those hops were most of a `HEAD /_ping` (about 7 ms of 9.4 at
load average 8). The Docker API listener (dockerapi/listener.py) hands its calls here
instead: the same middleware, URLs, token check, gate and audit, run start to end in one
thread of a long-lived pool; a non-streaming answer is finished (and its request_finished
signal sent, which closes the thread's database connections) before its bytes are sent.
Streamed answers (logs -f, events, stats, wait, build output) are async iterators; they are
sent from the event loop and stop when the client leaves, as with ASGIHandler.
"""

import asyncio
import contextlib
import io
import logging
import re
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.core import signals
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.urls import set_script_prefix

from dockerapi import errors

log = logging.getLogger(__name__)

# Calls that block for a while (a create waiting for its host, a non-TTY exec) hold a thread
# each; Django gave every request a new thread, so the cap only queues beyond this many.
MAX_THREADS = 64
# The Docker API's own paths (dockerapi/urls.py); anything else goes to ASGIHandler.
DOCKER_PATH = re.compile(r"^/(?:_ping|version|v\d+\.\d+/.*)$", re.DOTALL)


def is_docker_path(path: str) -> bool:
    """Whether a (decoded) request path is one of the Docker API's."""
    return DOCKER_PATH.match(path) is not None


class SyncAnswers:
    """Answer Docker API calls through Django's sync handler in a thread pool."""

    def __init__(self, asgi: ASGIHandler):
        self.asgi = asgi  # its create_request and send_response are reused as they are
        self.handler = BaseHandler()
        self.handler.load_middleware(is_async=False)
        self.pool = ThreadPoolExecutor(MAX_THREADS, thread_name_prefix="docker-api")

    def _respond(self, scope: dict, body):
        """In a worker thread: the response, finished unless it streams.

        `body`: bytes, or a file the listener is still filling (dockerapi/body_stream.py)."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=ASGIHandler, scope=scope)
        stream = io.BytesIO(body) if isinstance(body, bytes) else body
        request, response = self.asgi.create_request(scope, stream)
        if request is not None:
            response = self.handler.get_response(request)
        if not response.streaming:
            response.close()  # request_finished here, in the thread that used the connections
        return response

    async def answer(self, scope: dict, body, send, disconnected: asyncio.Event) -> None:
        """Answer one call; a streamed answer stops when `disconnected` is set."""
        try:
            response = await sync_to_async(
                self._respond, thread_sensitive=False, executor=self.pool
            )(scope, body)
        except Exception as exc:  # past Django's own handler: a bug, still answered Docker's way
            log.error("docker api: unhandled error on %s", scope["path"], exc_info=exc)
            response = errors.response(500, "internal error in Berth; see the server log")
        if not response.streaming:
            await self.asgi.send_response(response, send)
            return
        sending = asyncio.ensure_future(self.asgi.send_response(response, send))
        gone = asyncio.ensure_future(disconnected.wait())
        try:
            await asyncio.wait({sending, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sending, gone):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await sync_to_async(response.close, thread_sensitive=False, executor=self.pool)()
        if not sending.cancelled():
            sending.result()  # a send that failed (the client left mid-answer) raises here
