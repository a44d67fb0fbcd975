"""A hostile OpenAI-compatible upstream: raw TCP, so that it can break HTTP as no framework would.

Each connection reads one request, then runs the script set with :meth:`HostileUpstream.act`:

| script | what the peer does |
|---|---|
| ``huge_body`` | 200 and ``size`` bytes of body (``Content-Length`` if ``declared``, else chunked) |
| ``endless_pings`` | a stream: one chunk, then an SSE comment every ``interval`` s, forever |
| ``endless_line`` | a stream: one chunk, then one ``data:`` line that never ends, 64 KiB a write |
| ``slow_chunks`` | a stream: a content chunk every ``interval`` s, forever |
| ``invalid_utf8`` | a body (or, streamed, a second chunk) with bytes that are not UTF-8 |
| ``long_header`` | a response header of ``size`` bytes |
| ``many_headers`` | ``count`` response headers |

"Forever" ends when the gateway closes the connection: :attr:`sent` then says how many bytes
went out, and :meth:`wait_closed` waits for that. The server runs on its own loop in a daemon thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Self

import orjson

WRITE = 64 * 1024
Script = Callable[["Connection"], Awaitable[None]]

SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk_json(text: str, role: str | None = None) -> bytes:
    delta: dict[str, Any] = {"content": text}
    if role:
        delta["role"] = role
    return orjson.dumps(
        {
            "id": "chatcmpl-hostile",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "hostile",
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
        }
    )


def chunked(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked transfer encoding."""
    return b"%x\r\n%s\r\n" % (len(data), data)


class Connection:
    """One accepted connection, counting what it sends."""

    def __init__(self, writer: asyncio.StreamWriter, params: dict[str, Any]) -> None:
        self.writer = writer
        self.params = params
        self.sent = 0

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        self.sent += len(data)
        await self.writer.drain()

    async def event(self, data: bytes) -> None:
        await self.send(chunked(b"data: " + data + b"\n\n"))


async def huge_body(c: Connection) -> None:
    size: int = c.params.get("size", 256 * 1024 * 1024)
    framing = b"Content-Length: %d" % size if c.params.get("declared") else b"Transfer-Encoding: chunked"
    await c.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + framing + b"\r\n\r\n")
    block = b" " * WRITE
    while c.sent < size:
        await c.send(block if c.params.get("declared") else chunked(block))


async def endless_pings(c: Connection) -> None:
    await c.send(SSE_HEAD)
    await c.event(chunk_json("", role="assistant"))
    while True:
        await c.send(chunked(b": ping\n\n"))
        await asyncio.sleep(c.params.get("interval", 0.01))


async def endless_line(c: Connection) -> None:
    await c.send(SSE_HEAD)
    await c.event(chunk_json("", role="assistant"))
    await c.send(chunked(b"data: "))
    block = chunked(b"a" * WRITE)
    while True:
        await c.send(block)


async def slow_chunks(c: Connection) -> None:
    await c.send(SSE_HEAD)
    await c.event(chunk_json("", role="assistant"))
    while True:
        await asyncio.sleep(c.params.get("interval", 0.2))
        await c.event(chunk_json("tok "))


async def invalid_utf8(c: Connection) -> None:
    bad = b'"caf\xe9 \xff\xfe"'
    if c.params.get("stream"):
        await c.send(SSE_HEAD)
        await c.event(chunk_json("", role="assistant"))
        await c.event(chunk_json("x").replace(b'"x"', bad))
        await c.send(chunked(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        return
    body = (
        b'{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
        b'"message":{"role":"assistant","content":' + bad + b'},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}'
    )
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    await c.send(head % len(body))
    await c.send(body)


async def long_header(c: Connection) -> None:
    value = b"v" * c.params.get("size", 1024 * 1024)
    await c.send(b"HTTP/1.1 200 OK\r\nX-Absurd: " + value + b"\r\nContent-Length: 2\r\n\r\n{}")


async def many_headers(c: Connection) -> None:
    headers = b"".join(b"X-Absurd-%d: v\r\n" % i for i in range(c.params.get("count", 10_000)))
    await c.send(b"HTTP/1.1 200 OK\r\n" + headers + b"Content-Length: 2\r\n\r\n{}")


SCRIPTS: dict[str, Script] = {
    script.__name__: script
    for script in (
        huge_body,
        endless_pings,
        endless_line,
        slow_chunks,
        invalid_utf8,
        long_header,
        many_headers,
    )
}


class HostileUpstream:
    """``with HostileUpstream() as peer:``; ``peer.act("huge_body", size=...)`` before each request."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="hostile-upstream", daemon=True)
        self._server: asyncio.Server | None = None
        self._script: Script = huge_body
        self._params: dict[str, Any] = {}
        self.sent = 0  # bytes the last connection sent
        self._closed = threading.Event()
        self.port = 0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def act(self, script: str, **params: Any) -> None:
        self._script, self._params = SCRIPTS[script], params
        self._closed.clear()
        self.sent = 0

    def wait_closed(self, within: float) -> bool:
        """Whether the last connection closed (the gateway hung up, or the script ended) in ``within`` s."""
        return self._closed.wait(within)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = Connection(writer, dict(self._params))
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            await self._script(connection)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.sent = connection.sent
            writer.close()
            self._closed.set()

    def __enter__(self) -> Self:
        self._thread.start()

        async def start() -> asyncio.Server:
            return await asyncio.start_server(self._handle, "127.0.0.1", 0)

        self._server = asyncio.run_coroutine_threadsafe(start(), self._loop).result(5)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
