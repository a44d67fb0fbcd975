"""A request served through the edge leaves no reference cycle behind: what it allocated is
freed as soon as it ends, not when the garbage collector next runs (a cycle per request
was 10 MiB of a worker's RSS under load, and the collector's work)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator

import httpx
import uvicorn
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from genledger.api.edge import Edge
from genledger.api.errors import on_gateway_error, on_http_exception
from genledger.api.event_stream import EventStreamResponse
from genledger.api.router import App
from genledger.errors import GatewayError
from tests.deadlines import eventually


async def plain(request: Request) -> Response:
    return Response(b"{}", media_type="application/json")


async def stream(request: Request) -> Response:
    async def frames() -> AsyncIterator[bytes]:
        for n in range(3):
            yield b"data: %d\n\n" % n

    return EventStreamResponse(frames())


def edge(router):
    return Edge(
        router,
        handlers={GatewayError: on_gateway_error, HTTPException: on_http_exception},
        max_body_bytes=1000,
    )


async def test_requests_plain_and_streamed_leave_no_cycle_of_the_servers_objects() -> None:
    app = App([Route("/plain", plain), Route("/stream", stream)], edge=edge)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off"))
    serving = asyncio.create_task(server.serve())

    async def started() -> bool:
        return bool(server.started)

    leaked: list[str] = []
    try:
        assert await eventually(started, within=10)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            await client.get("/plain")  # the connection and the client's own objects, first
            gc.collect()
            gc.set_debug(gc.DEBUG_SAVEALL)
            for _ in range(10):
                assert (await client.get("/plain")).status_code == 200
                assert (await client.get("/stream")).text.count("data:") == 3
            gc.collect()
            leaked = [
                type(found).__name__ for found in gc.garbage if type(found).__module__.startswith("uvicorn")
            ]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        server.should_exit = True
        await serving
    assert leaked == []
