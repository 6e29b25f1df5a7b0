"""config/asgi_limit.py: at most N HTTP requests of a worker inside Django at once, in arrival
order, a slot freed when the answer starts (a streamed answer goes on without it); WebSockets
are not counted."""

import asyncio

from config.asgi_limit import BoundedHTTP


def test_requests_beyond_the_limit_wait_their_turn_and_streams_free_their_slot():
    inside, most, order = [0], [0], []
    gates: dict[int, asyncio.Event] = {}

    async def app(scope, receive, send):
        if scope["type"] == "websocket":
            order.append("ws")
            return
        n = scope["n"]
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        order.append(n)
        await gates[n].wait()  # the view's work
        inside[0] -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if n == 0:  # a streamed answer: goes on after its start
            await gates["stream"].wait()
        await send({"type": "http.response.body", "body": b""})

    async def main():
        bounded = BoundedHTTP(app, 2)
        sent = []

        async def send(message):
            sent.append(message["type"])

        gates.update({n: asyncio.Event() for n in range(5)}, stream=asyncio.Event())
        tasks = [
            asyncio.create_task(bounded({"type": "http", "n": n}, None, send)) for n in range(5)
        ]
        await asyncio.sleep(0.01)
        assert order == [0, 1]  # two inside, three waiting
        await bounded({"type": "websocket"}, None, send)  # not counted, not waiting
        gates[0].set()  # 0 answers (and keeps streaming): 2 gets its slot
        await asyncio.sleep(0.01)
        assert order == [0, 1, "ws", 2]
        for n in (1, 2, 3, 4):
            gates[n].set()
            await asyncio.sleep(0.01)
        gates["stream"].set()
        await asyncio.gather(*tasks)
        assert order == [0, 1, "ws", 2, 3, 4] and most[0] == 2
        assert sent.count("http.response.body") == 5

    asyncio.run(main())
