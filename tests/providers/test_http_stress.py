"""The pool under abuse: a thousand calls, answers and streams, with every fault a peer can
make and callers that give up at any await, against max_connections = 2. Whatever happens,
no connection may be lost to the pool (it would never serve again once two are) and no more
than two may be open."""

from __future__ import annotations

import asyncio
import gzip
import random
from typing import Any

from genledger.config import ProviderConfig
from genledger.core.chat import Completion
from genledger.core.events import ProviderEvent, TextDelta
from genledger.core.failures import UpstreamFailure
from genledger.providers.base import UpstreamCall
from genledger.providers.http import HttpProvider

LIMIT = 2
CALLS = 1000
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
GZIPPED = gzip.compress(b"{}" * 1000)

# What the peer does, named by the request's path.
MODES = [
    "ok", "ok", "ok", "stream", "stream", "slow-stream", "close", "http10", "error", "mute", "cut",
    "reset", "big", "cut-stream", "two-answers", "trailer", "gzip", "upgrade",
]  # fmt: skip


async def answer(mode: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Answer one request as ``mode`` says; False once the connection is to be closed."""
    if mode == "ok":
        writer.write(OK)
    elif mode == "two-answers":
        writer.write(OK + OK)
    elif mode == "trailer":
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nX-T: 1\r\n\r\n")
    elif mode == "gzip":
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(GZIPPED)
        )
        writer.write(GZIPPED)
    elif mode == "close":
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}")
        return False
    elif mode == "http10":
        writer.write(b"HTTP/1.0 200 OK\r\n\r\n{}")
        return False
    elif mode == "error":
        writer.write(b'HTTP/1.1 500 Oops\r\nContent-Length: 11\r\n\r\n{"error":1}')
    elif mode == "upgrade":
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n")
    elif mode.endswith("stream"):
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for index in range(random.randint(1, 20)):
            event = b"data: %d\n\n" % index
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            if mode == "slow-stream":
                await writer.drain()
                await asyncio.sleep(0.002)
        if mode == "cut-stream":
            await writer.drain()
            writer.transport.abort()
            return False
        writer.write(b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n")
    elif mode == "mute":
        await reader.read()  # until the caller gives up and closes
        return False
    elif mode == "cut":
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}")
        return False
    elif mode == "reset":
        writer.transport.abort()
        return False
    elif mode == "big":
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (1 << 20) + bytes(1 << 20))
    await writer.drain()
    return True


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            mode = head.split(b" ", 2)[1].decode().strip("/")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)
            if not await answer(mode, reader, writer):
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


class Translator:
    def __init__(self) -> None:
        self.finished = self.complete = False
        self.unfinished = "early"

    def feed_data(self, data: bytes) -> list[ProviderEvent]:
        if data == b"[DONE]":
            self.finished = self.complete = True
            return []
        return [TextDelta(data.decode())]


class Provider(HttpProvider):
    def _payload(self, call: UpstreamCall, *, stream: bool) -> bytes:
        return b"{}"

    def _completion(self, raw: bytes) -> Completion:
        raise NotImplementedError

    def _translator(self) -> Translator:
        return Translator()


async def call(provider: Provider, url: str, rng: random.Random) -> str:
    """One call as ``rng`` has it; what became of it."""
    mode = rng.choice(MODES)

    async def calling() -> None:
        if mode.endswith("stream") or rng.random() < 0.3:
            events = await provider._open(f"{url}/{mode}", b"{}", Translator())
            try:
                async for _ in events:
                    if rng.random() < 0.05:
                        break  # the caller went away mid-stream
                    if rng.random() < 0.1:
                        await asyncio.sleep(0.001)
            finally:
                await events.aclose()
        else:
            await provider._post(f"{url}/{mode}", b"{}")

    task = asyncio.ensure_future(calling())
    if rng.random() < 0.3:  # cancelled at whatever await it is in by then
        asyncio.get_running_loop().call_later(rng.random() * 0.03, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        return "cancelled"
    except UpstreamFailure as failure:
        return failure.kind.value
    return "ok"


def established_to(port: int) -> int:
    """TCP connections of this machine in ESTABLISHED state towards ``port``."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as lines:
                for line in list(lines)[1:]:
                    fields = line.split()
                    if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                        count += 1
        except FileNotFoundError:
            continue
    return count


async def test_a_small_pool_survives_a_thousand_faulty_and_cancelled_calls() -> None:
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    config = ProviderConfig(
        kind="openai", base_url=url, timeout=0.2, stream_idle_timeout=0.2, max_connections=LIMIT
    )
    provider = Provider("stress", config, url, {})
    pool: Any = provider._http._pool
    rng = random.Random(7)
    outcomes: dict[str, int] = {}
    most = 0
    running = asyncio.Semaphore(20)

    async def one() -> None:
        nonlocal most
        async with running:
            outcome = await call(provider, url, rng)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            most = max(most, len(pool._open) + pool._opening)

    try:
        await asyncio.gather(*(one() for _ in range(CALLS)))
        await asyncio.sleep(0.1)  # the last closes land
        assert most <= LIMIT
        assert len(pool._open) <= LIMIT and pool._opening == 0 and not pool._waiters
        assert established_to(port) <= LIMIT
        for _ in range(5):  # and it still serves
            assert await asyncio.wait_for(provider._post(f"{url}/ok", b"{}"), 2) == b"{}"
    finally:
        await provider.aclose()
        server.close()
    assert set(outcomes) <= {"ok", "cancelled", "timeout", "unreachable", "invalid_response", "server_error"}
    assert outcomes["ok"] > CALLS // 5 and outcomes["cancelled"] > 0 and outcomes["timeout"] > 0
