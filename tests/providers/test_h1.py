"""The HTTP/1.1 client (h1's connection, the pool) against raw servers that say exactly what a
test scripts: framing, keep-alive, limits, encodings, and every way a peer can misbehave."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import ssl
import subprocess
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from genledger.providers import h1
from genledger.providers.pool import InvalidHeader, Pool

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Peer:
    """A TCP server on 127.0.0.1 running ``handler`` per connection; counts connections and
    keeps the raw requests it read."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Peer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1/chat"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self._handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        return request


def answering(*responses: bytes, close: bool = False) -> Callable[[Peer], Handler]:
    """A handler that answers each request on a connection with the next of ``responses``
    (the last one again once they run out), then closes if ``close``."""

    def make(peer: Peer) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for index in range(1000):
                await peer.read_request(reader)
                writer.write(responses[min(index, len(responses) - 1)])
                await writer.drain()
                if close:
                    return

        return handler

    return make


async def serve(make: Callable[[Peer], Handler]) -> Peer:
    peer = Peer(lambda r, w: asyncio.sleep(0))
    peer._handler = make(peer)
    return await peer.__aenter__()


@pytest.fixture
async def pool() -> AsyncIterator[Pool]:
    made = Pool({"Content-Type": "application/json"}, limit=4, connect_timeout=2)
    yield made
    await made.aclose()


async def body_of(pool: Pool, url: str, data: bytes = b"{}") -> tuple[h1.Response, bytes]:
    response = await pool.post(url, data)
    chunks = []
    while chunk := await response.readany():
        chunks.append(chunk)
    response.release()
    return response, b"".join(chunks)


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"


async def test_a_request_is_one_post_with_the_headers_and_its_length(pool):
    peer = await serve(answering(OK))
    port = peer.url.split(":")[2].split("/")[0]
    try:
        response, body = await body_of(pool, peer.url + "?a=b c", b'{"x": 1}')
    finally:
        await peer.__aexit__()
    assert (response.status, body, response.headers["content-type"]) == (200, b"{}", "application/json")
    assert peer.requests == [
        b"POST /v1/chat?a=b%20c HTTP/1.1\r\nHost: 127.0.0.1:"
        + port.encode()
        + b'\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n{"x": 1}'
    ]


async def test_a_connection_carries_request_after_request(pool):
    peer = await serve(answering(OK))
    try:
        for _ in range(5):
            assert (await body_of(pool, peer.url))[1] == b"{}"
    finally:
        await peer.__aexit__()
    assert peer.connections == 1


async def test_connection_close_and_a_body_read_to_its_end_are_not_reused(pool):
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
    peer = await serve(answering(closing))
    try:
        for _ in range(3):
            assert (await body_of(pool, peer.url))[1] == b"{}"
    finally:
        await peer.__aexit__()
    assert peer.connections == 3


async def test_a_body_without_a_length_ends_with_the_connection(pool):
    peer = await serve(answering(b"HTTP/1.1 200 OK\r\n\r\nuntil the end", close=True))
    try:
        response, body = await body_of(pool, peer.url)
    finally:
        await peer.__aexit__()
    assert body == b"until the end" and response.complete


async def test_chunks_and_an_interim_answer_are_read_as_http_says(pool):
    chunked = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nX-A: 2\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    peer = await serve(answering(chunked))
    try:
        response, body = await body_of(pool, peer.url)
        assert (await body_of(pool, peer.url))[1] == b"hello world"  # and kept alive
    finally:
        await peer.__aexit__()
    assert body == b"hello world"
    assert response.headers["x-a"] == "1, 2"
    assert peer.connections == 1


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw, as some servers send it
    ],
    ids=["gzip", "deflate", "raw-deflate"],
)
async def test_a_compressed_body_is_decoded(pool, encoding, encode):
    data = b'{"text": "' + b"a" * 5000 + b'"}'
    packed = encode(data)
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: {encoding}\r\nContent-Length: {len(packed)}\r\n\r\n"
    peer = await serve(answering(head.encode() + packed))
    try:
        assert (await body_of(pool, peer.url))[1] == data
    finally:
        await peer.__aexit__()
    assert b"Accept-Encoding" not in peer.requests[0]  # the pool sends what it is given


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 2\r\n\r\n{}", h1.MalformedResponse),
        (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope", h1.BrokenBody),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", h1.BrokenBody),  # then the peer closes
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", h1.BrokenBody),
        (b"SMTP ready\r\n\r\n", h1.MalformedResponse),
        (b"HTTP/1.1 200 OK\r\nX-Long: " + b"x" * 9000 + b"\r\n\r\n", h1.LineTooLong),
        (b"HTTP/1.1 200 OK\r\n" + b"X-Many: 1\r\n" * 200 + b"\r\n", h1.MalformedResponse),
        (b"HTTP/1.1 200 OK\r\n" + (b"X-Big: " + b"y" * 7000 + b"\r\n") * 10 + b"\r\n", h1.MalformedResponse),
        (b"", h1.Disconnected),
    ],
    ids=[
        "brotli",
        "bad-gzip",
        "short",
        "short-chunks",
        "not-http",
        "long-line",
        "many",
        "huge-head",
        "nothing",
    ],
)
async def test_what_cannot_be_an_answer_is_named(pool, answer, error):
    peer = await serve(answering(answer, close=True))
    try:
        with pytest.raises(error):
            await body_of(pool, peer.url)
    finally:
        await peer.__aexit__()


async def test_an_idle_connection_the_provider_closed_is_not_used_again(pool):
    peer = await serve(answering(OK, close=True))  # answers, then closes: keep-alive in words only
    try:
        for _ in range(3):
            assert (await body_of(pool, peer.url))[1] == b"{}"
            await asyncio.sleep(0.05)  # the close arrives while the connection idles
    finally:
        await peer.__aexit__()
    assert peer.connections == 3


async def test_an_idle_connection_past_its_keepalive_is_closed_not_reused():
    made = Pool({}, limit=4, connect_timeout=2, keepalive_s=0.05)
    peer = await serve(answering(OK))
    try:
        await body_of(made, peer.url)
        await asyncio.sleep(0.1)
        await body_of(made, peer.url)
    finally:
        await made.aclose()
        await peer.__aexit__()
    assert peer.connections == 2


async def test_bytes_nobody_asked_for_drop_the_connection(pool):
    peer = await serve(answering(OK + b"HTTP/1.1 200 OK\r\n"))  # one answer too many
    try:
        await body_of(pool, peer.url)
        await asyncio.sleep(0.05)
        await body_of(pool, peer.url)
    finally:
        await peer.__aexit__()
    assert peer.connections == 2


async def test_requests_beyond_the_limit_wait_for_a_connection():
    made = Pool({}, limit=2, connect_timeout=2)
    release = asyncio.Event()

    def slow(peer: Peer) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                await peer.read_request(reader)
                await release.wait()
                writer.write(OK)
                await writer.drain()

        return handler

    peer = await serve(slow)
    try:
        calls = [asyncio.create_task(body_of(made, peer.url)) for _ in range(6)]
        await asyncio.sleep(0.1)
        assert peer.connections == 2 and len(peer.requests) == 2
        release.set()
        assert [body for _, body in await asyncio.gather(*calls)] == [b"{}"] * 6
    finally:
        await made.aclose()
        await peer.__aexit__()
    assert peer.connections == 2


async def test_a_request_cancelled_while_waiting_closes_its_connection_and_frees_its_place():
    made = Pool({}, limit=1, connect_timeout=2)

    def mute_once(peer: Peer) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await peer.read_request(reader)
            if peer.connections == 1:
                await asyncio.sleep(10)  # never answers
            writer.write(OK)
            await writer.drain()

        return handler

    peer = await serve(mute_once)
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await body_of(made, peer.url)
        assert (await body_of(made, peer.url))[1] == b"{}"  # on a new connection, in the one place
    finally:
        await made.aclose()
        await peer.__aexit__()
    assert peer.connections == 2


async def test_a_response_released_before_its_end_closes_the_connection(pool):
    size = 16 * h1.HIGH_WATER  # more than the socket buffers hold: it cannot have all come
    big = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size
    peer = await serve(answering(big))
    try:
        response = await pool.post(peer.url, b"{}")
        assert await response.readany()
        assert not response.complete
        response.release()
        assert len((await body_of(pool, peer.url))[1]) == size
    finally:
        await peer.__aexit__()
    assert peer.connections == 2


async def test_a_reader_that_falls_behind_stops_the_socket_being_read(pool):
    size = 8 * h1.HIGH_WATER
    big = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size
    peer = await serve(answering(big))
    try:
        response = await pool.post(peer.url, b"{}")
        await asyncio.sleep(0.2)  # the peer writes all it can meanwhile
        first = await response.readany()
        assert len(first) <= 2 * h1.HIGH_WATER  # not the whole body: reading paused
        rest = b"".join([chunk async for chunk in _chunks(response)])
        assert len(first) + len(rest) == size
        response.release()
    finally:
        await peer.__aexit__()


async def _chunks(response: h1.Response) -> AsyncIterator[bytes]:
    while chunk := await response.readany():
        yield chunk


async def test_set_exception_fails_the_waiting_read(pool):
    head_only = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"

    def hold(peer: Peer) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await peer.read_request(reader)
            writer.write(head_only)
            await asyncio.sleep(5)

        return handler

    peer = await serve(hold)
    try:
        response = await pool.post(peer.url, b"{}")
        asyncio.get_running_loop().call_later(0.05, response.set_exception, TimeoutError("stalled"))
        with pytest.raises(TimeoutError, match="stalled"):
            await response.readany()
        response.release()
    finally:
        await peer.__aexit__()


async def test_a_refused_connection_says_so(pool):
    peer = await serve(answering(OK))
    url = peer.url
    await peer.__aexit__()
    assert peer.server is not None
    await peer.server.wait_closed()
    with pytest.raises(h1.ConnectError) as caught:
        await pool.post(url, b"{}")
    assert caught.value.errno is not None


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("ftp://127.0.0.1/v1", h1.NotHttpURL),
        ("http:///v1", h1.InvalidURL),
        ("http://user:pw@127.0.0.1/v1", h1.InvalidURL),
        ("http://127.0.0.1:99999/v1", h1.InvalidURL),
    ],
)
async def test_a_url_that_cannot_be_called_is_refused_before_connecting(pool, url, error):
    with pytest.raises(error):
        await pool.post(url, b"{}")


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer sk-1\n"},
        {"Authorization": "Bearer \r\nX-Evil: 1"},
        {"Bad Name": "1"},
        {"X": "é€"},
    ],
    ids=["newline", "injection", "name", "not-latin-1"],
)
async def test_a_header_that_cannot_be_sent_is_refused(headers):
    made = Pool(headers, limit=1, connect_timeout=1)
    with pytest.raises(InvalidHeader):
        await made.post("http://127.0.0.1:9/v1", b"{}")


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return key, cert


async def test_https_checks_the_provider_s_certificate(pool, self_signed):
    key, cert = self_signed
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(h1.CertificateError):
            await pool.post(f"https://127.0.0.1:{port}/v1", b"{}")
    finally:
        server.close()


async def test_a_request_woken_for_a_connection_but_cancelled_passes_its_turn_on():
    made = Pool({}, limit=1, connect_timeout=2)
    peer = await serve(answering(OK))
    try:
        holding = await made.post(peer.url, b"{}")
        while await holding.readany():
            pass
        woken = asyncio.create_task(body_of(made, peer.url))
        waiting = asyncio.create_task(body_of(made, peer.url))
        await asyncio.sleep(0.05)  # both wait for the one connection
        holding.release()  # wakes the first waiter...
        woken.cancel()  # ...which is cancelled before it runs: the second must get the connection
        assert (await asyncio.wait_for(waiting, 2))[1] == b"{}"
    finally:
        await made.aclose()
        await peer.__aexit__()


async def test_a_second_answer_to_one_request_does_not_keep_the_connection_from_the_pool():
    made = Pool({}, limit=1, connect_timeout=2)
    peer = await serve(answering(OK + OK))  # two answers to each request, in one write
    try:
        for _ in range(3):
            assert (await asyncio.wait_for(body_of(made, peer.url), 2))[1] == b"{}"
    finally:
        await made.aclose()
        await peer.__aexit__()
    assert peer.connections == 3
    assert not made._open


async def test_bytes_after_a_whole_answer_do_not_fail_its_reading(pool):
    peer = await serve(answering(OK + b"garbage"))
    try:
        assert (await body_of(pool, peer.url))[1] == b"{}"
        assert (await body_of(pool, peer.url))[1] == b"{}"
    finally:
        await peer.__aexit__()
    assert peer.connections == 2


async def test_trailers_are_not_the_next_answer_s_headers(pool):
    trailed = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nContent-Encoding: gzip\r\n\r\n"
    )
    peer = await serve(answering(trailed, OK))
    try:
        first, body = await body_of(pool, peer.url)
        second, again = await body_of(pool, peer.url)
    finally:
        await peer.__aexit__()
    assert (body, again) == (b"{}", b"{}")
    assert "content-encoding" not in first.headers and "content-encoding" not in second.headers
    assert peer.connections == 1


async def test_a_protocol_upgrade_is_a_malformed_answer(pool):
    upgrade = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n"
    peer = await serve(answering(upgrade))
    try:
        with pytest.raises(h1.MalformedResponse):
            await body_of(pool, peer.url)
    finally:
        await peer.__aexit__()


async def test_an_idle_tls_connection_past_its_keepalive_frees_its_place_at_once(self_signed, monkeypatch):
    # Closing it politely would wait for the provider's close_notify (up to 30 s, holding the
    # place); one that never answers it must not keep a request from a connection.
    key, cert = self_signed
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # what the default context trusts
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    peer = Peer(lambda r, w: asyncio.sleep(0))

    async def deaf_after_answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await peer.read_request(reader)
        writer.write(OK)
        await writer.drain()
        writer.transport.pause_reading()  # reads nothing more: no close_notify is answered
        await asyncio.sleep(10)

    peer._handler = deaf_after_answering
    server = await asyncio.start_server(peer._serve, "127.0.0.1", 0, ssl=context)
    url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    made = Pool({}, limit=1, connect_timeout=2, keepalive_s=0.05)
    try:
        assert (await body_of(made, url))[1] == b"{}"
        await asyncio.sleep(0.1)
        assert (await asyncio.wait_for(body_of(made, url), 2))[1] == b"{}"
    finally:
        await made.aclose()
        server.close()
    assert peer.connections == 2


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_compressed_body_is_decoded_a_little_at_a_time(pool, encoding):
    # 64 KiB on the wire that stand for 64 MiB: no read may hold much more than HIGH_WATER
    # (a max_response_bytes counted after decoding is no bound if a read can hold it all).
    size = 64 * 1024 * 1024
    packed = gzip.compress(bytes(size), 9) if encoding == "gzip" else zlib.compress(bytes(size), 9)
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: {encoding}\r\nContent-Length: {len(packed)}\r\n\r\n"
    peer = await serve(answering(head.encode() + packed))
    try:
        response = await pool.post(peer.url, b"{}")
        largest = total = 0
        while chunk := await response.readany():
            largest = max(largest, len(chunk))
            total += len(chunk)
        response.release()
        assert (await body_of(pool, peer.url))[1] == bytes(size)  # and the connection serves on
    finally:
        await peer.__aexit__()
    assert total == size
    assert largest <= 2 * h1.HIGH_WATER
    assert peer.connections == 1


async def test_a_whole_answer_released_unread_leaves_its_connection_reading(pool):
    size = h1.HIGH_WATER + 1000  # reading pauses as its last bytes come
    big = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size
    peer = await serve(answering(big))
    try:
        response = await pool.post(peer.url, b"{}")
        await asyncio.sleep(0.1)
        assert response.complete
        response.release()  # unread: its connection goes back to the pool, paused or not
        assert len((await asyncio.wait_for(body_of(pool, peer.url), 2))[1]) == size
    finally:
        await peer.__aexit__()
    assert peer.connections == 1
