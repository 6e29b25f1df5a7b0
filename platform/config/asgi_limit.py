"""At most N HTTP requests of one worker process inside Django at once; the rest wait their
turn on the event loop until a request's answer starts (issue 15: the production server under
load).

Django runs each ASGI request's synchronous part in a thread of its own. Unbounded, a worker
under load holds a hundred such threads: they share one GIL (switching every 5 ms), queue for
the few connections of the database pool, and every request finishes late. Waiting for a slot
costs nothing on the event loop, and the requests admitted run at full speed in arrival order.
WebSockets and lifespan events are not counted (a web terminal stays open for minutes).
"""

import asyncio


class BoundedHTTP:
    """Wrap an ASGI app: HTTP requests beyond `limit` at once wait (first come, first served)."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit
        self._slots: asyncio.Semaphore | None = None  # made on the worker's event loop

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.limit <= 0:
            return await self.app(scope, receive, send)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.limit)
        slots, held = self._slots, [True]
        await slots.acquire()

        def free():
            if held[0]:
                held[0] = False
                slots.release()

        async def send_and_free(message):
            # The slot bounds the work before the answer starts: a streamed answer (logs
            # followed) then goes on without holding it.
            if message["type"] == "http.response.start":
                free()
            await send(message)

        try:
            return await self.app(scope, receive, send_and_free)
        finally:
            free()
