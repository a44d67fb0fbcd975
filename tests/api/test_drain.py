"""A server that shuts down closes no connection under a caller who may be sending on it.

The graceful server on 127.0.0.1 with a two-route app, spoken to over raw sockets so that each
connection is the test's own: kept alive, idle, or with its answer under way when the
shutdown starts (SIGTERM, or a worker retiring in a rolling restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from genledger.api.connections import DRAIN_IDLE_GRACE_S, PROTOCOL, ServerConfig
from genledger.api.router import App
from genledger.api.server import GracefulServer
from tests.deadlines import eventually

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @property
    def closes(self) -> bool:
        return self.headers.get("connection") == "close"


async def ask(connection: Connection, path: str) -> Answer:
    """``GET path`` on a kept-alive connection, and its whole answer."""
    reader, writer = connection
    writer.write(f"GET {path} HTTP/1.1\r\nhost: test\r\n\r\n".encode())
    await writer.drain()
    return await answer(reader)


async def answer(reader: asyncio.StreamReader, body: bool = True) -> Answer:
    head = (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in head[1:] if line)
    content = await reader.readexactly(int(headers["content-length"])) if body else b""
    return Answer(int(head[0].split()[1]), headers, content)


async def closed(reader: asyncio.StreamReader) -> bool:
    """Whether the server closed the connection (the next read is its end)."""
    return await reader.read(1) == b""


@contextlib.asynccontextmanager
async def serving(gate: asyncio.Event) -> AsyncIterator[tuple[GracefulServer, int]]:
    """The graceful server with ``/fast``, and ``/slow``, whose answer ends once ``gate`` opens."""

    async def fast(request: Request) -> Response:
        return PlainTextResponse("fast")

    async def slow(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            yield b"sl"
            await gate.wait()
            yield b"ow"

        return StreamingResponse(body(), headers={"content-length": "4"})

    app = App([Route("/fast", fast), Route("/slow", slow)], edge=lambda router: router)
    config = ServerConfig(app, host="127.0.0.1", port=0, http=PROTOCOL, log_config=None, lifespan="off")
    server = GracefulServer(config, app, shutdown_timeout=5.0)
    threshold = gc.get_threshold()
    task = asyncio.create_task(server.serve())
    try:

        async def started() -> bool:
            return bool(server.started)

        assert await eventually(started, within=10)
        yield server, server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        gc.unfreeze()
        gc.set_threshold(*threshold)


async def drained(server: GracefulServer) -> None:
    """Once ``server`` has been told to stop and has stopped accepting."""
    server.should_exit = True

    async def stopped_accepting() -> bool:
        return not server.servers[0].is_serving()

    assert await eventually(stopped_accepting, within=5)


async def test_requests_on_kept_alive_connections_as_the_server_drains_are_answered_with_connection_close():
    gate = asyncio.Event()
    async with asyncio.timeout(20), serving(gate) as (server, port):
        kept, idle, streaming = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        for connection in (kept, idle):
            first = await ask(connection, "/fast")
            assert (first.status, first.closes) == (200, False)
        streaming[1].write(b"GET /slow HTTP/1.1\r\nhost: test\r\n\r\n")
        started = await answer(streaming[0], body=False)  # its headers went out with keep-alive
        assert (started.status, started.closes) == (200, False)
        assert await streaming[0].readexactly(2) == b"sl"

        await drained(server)
        since = time.monotonic()
        # The request a caller sends on its kept-alive connection just then is answered, and
        # tells it to go elsewhere for the next.
        late = await ask(kept, "/fast")
        assert (late.status, late.body, late.closes) == (200, b"fast", True)
        assert await closed(kept[0])
        # An answer under way ends as usual, and the request that follows it is answered too.
        gate.set()
        assert await streaming[0].readexactly(2) == b"ow"
        after = await ask(streaming, "/fast")
        assert (after.status, after.closes) == (200, True)
        # A connection that stays idle is closed after the grace.
        assert await closed(idle[0])
        assert time.monotonic() - since < DRAIN_IDLE_GRACE_S + 2
        for _, writer in (kept, idle, streaming):
            writer.close()


async def test_a_connection_accepted_before_the_drain_is_answered_and_no_new_one_is_accepted():
    async with asyncio.timeout(20), serving(asyncio.Event()) as (server, port):
        fresh = await asyncio.open_connection("127.0.0.1", port)  # accepted, nothing sent yet
        await drained(server)
        late = await ask(fresh, "/fast")
        assert (late.status, late.closes) == (200, True)
        fresh[1].close()
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            return
        writer.close()
        raise AssertionError("a new connection was accepted while the server drained")
