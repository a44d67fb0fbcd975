"""HTTP/1.1 to an upstream: one keep-alive connection's protocol, and the response it reads.

The gateway's calls upstream are all alike: a POST of a JSON body, then a JSON answer or a
stream of server-sent events. For that, this is asyncio's protocol API under httptools (the
C parser uvicorn serves with), and nothing more: no cookie jar, no redirects, no proxies, no
tracing hooks, no per-request URL or header objects. Measured under callgrind against the
fake upstream, aiohttp's client spent about 336k instructions on such a call and this about
20k, where the floor's whole request (``../shared/bench-floor/``, on aiohttp) is about 800k.

A :class:`Connection` carries one request at a time. Its :class:`Response` comes once the
head has arrived (status and headers); its body is read with :meth:`Response.readany`.
Reading stops while more than :data:`HIGH_WATER` bytes wait unread, so a slow reader holds
at most that much. What can go wrong is one of the exceptions below, which
:mod:`genledger.providers.transport` maps to failure kinds.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable
from typing import cast

import httptools

MAX_HEADER_LINE = 8190  # a longer header name or value is MalformedResponse
MAX_HEADERS = 128  # more header fields than this is MalformedResponse
MAX_HEAD_BYTES = 64 * 1024  # a status line and headers longer than this in all, too
HIGH_WATER = 256 * 1024  # unread body bytes above which the socket is no longer read


class HttpClientError(Exception):
    """A call upstream failed below HTTP's meaning: the connection, or the bytes on it."""


class InvalidURL(HttpClientError):
    """A URL that cannot be called (our configuration's fault)."""


class NotHttpURL(InvalidURL):
    """A URL whose scheme is neither ``http`` nor ``https``."""


class ConnectTimeout(HttpClientError):
    """No connection within ``connect_timeout``."""


class DNSError(HttpClientError):
    """The host name did not resolve."""


class CertificateError(HttpClientError):
    """The provider's TLS certificate was rejected."""


class TLSError(HttpClientError):
    """The TLS handshake failed."""


class ConnectError(OSError):
    """The connection was refused or could not be made (its ``errno`` says why)."""


class Disconnected(HttpClientError):
    """The provider closed the connection before its answer was whole."""


class MalformedResponse(HttpClientError):
    """Bytes that are not an HTTP/1.1 response, or a head over this client's limits."""


class LineTooLong(MalformedResponse):
    """A line (of the head, or of an event stream) over its limit."""


class BrokenBody(HttpClientError):
    """A body that cannot be decoded (its content encoding, or its chunked framing)."""


def _decoder(encoding: bytes | None) -> _Inflate | None:
    """What turns a body's bytes, as they come, into the body (None: they are the body)."""
    if encoding is None:
        return None
    encoding = encoding.strip().lower()  # content codings are case-insensitive
    if encoding == b"identity":
        return None
    if encoding == b"gzip" or encoding == b"x-gzip":
        return _Inflate(16 + zlib.MAX_WBITS)
    if encoding == b"deflate":  # zlib-wrapped, as the RFC says; some servers send it raw
        return _Inflate(None)
    raise MalformedResponse(f"unsupported content encoding {encoding[:40]!r}")


class _Inflate:
    """A compressed body's decoder, :data:`HIGH_WATER` bytes out at a time: a few bytes may
    stand for gigabytes, so the input that would make more waits in ``tail`` until the reader
    has taken what came out."""

    __slots__ = ("_inflate", "tail")

    def __init__(self, wbits: int | None) -> None:  # None: deflate, zlib-wrapped or raw
        self._inflate: zlib._Decompress | None = None if wbits is None else zlib.decompressobj(wbits)
        self.tail = b""

    def decompress(self, data: bytes) -> bytes:
        if self.tail:
            data = self.tail + data
        inflate = self._inflate
        if inflate is None:
            raw = not data or (data[0] & 0x0F) != 8  # no zlib header: a raw deflate stream
            inflate = self._inflate = zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
        out = inflate.decompress(data, HIGH_WATER)
        self.tail = inflate.unconsumed_tail
        return out


class Response:
    """The status and headers of an answer, and its body as it comes.

    ``headers`` has lower-case names (a repeated field's values joined with ", "), made when
    first read: the gateway reads them only from an error answer.
    One reader at a time: :meth:`readany` returns what has arrived, waiting only when nothing
    has; ``b""`` once the body is whole. A failure of the connection is raised by the read
    that meets it; :meth:`set_exception` makes the waiting read (or the next) raise another.
    """

    __slots__ = (
        "_buffered",
        "_chunks",
        "_connection",
        "_decode",
        "_error",
        "_fields",
        "_headers",
        "_paused",
        "_waiter",
        "complete",
        "content_length",
        "status",
    )

    def __init__(
        self, connection: Connection, status: int, fields: list[bytes], framing: dict[bytes, bytes]
    ) -> None:
        self._connection = connection
        self.status = status
        self._fields = fields
        self._headers: dict[str, str] | None = None
        length = framing.get(b"content-length")
        self.content_length = int(length) if length is not None and length.isdigit() else None
        self._decode = _decoder(framing.get(b"content-encoding"))
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False  # the socket is not read until the reader takes what came
        self.complete = False

    @property
    def headers(self) -> dict[str, str]:
        if self._headers is None:
            headers: dict[str, str] = {}
            fields = self._fields
            for index in range(0, len(fields), 2):
                key = fields[index].decode("latin-1").lower()
                text = fields[index + 1].decode("latin-1")
                headers[key] = f"{headers[key]}, {text}" if key in headers else text
            self._headers = headers
        return self._headers

    async def readany(self) -> bytes:
        """The body bytes that have arrived since the last read (waiting for some if none
        have); ``b""`` at the body's end."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._decode is not None and self._decode.tail:  # more of the body is decoded
                self._feed(b"")
                continue
            if self.complete:
                return b""
            self._waiter = self._connection.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        chunks = self._chunks
        self._chunks = []
        self._buffered = 0
        if self._paused and (self._decode is None or not self._decode.tail):
            self._paused = False
            self._connection.resume()
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def set_exception(self, exc: BaseException) -> None:
        """Fail the read waiting now, or the next one, with ``exc``."""
        if self._error is None:
            self._error = exc
        self._wake()

    def release(self) -> None:
        """Done with this response: its connection serves the next request if the body was read
        whole and the provider keeps it alive; else it is closed."""
        self._connection.release(self)

    def _feed(self, data: bytes) -> None:
        decode = self._decode
        if decode is not None:
            try:
                data = decode.decompress(data)
            except zlib.error as exc:
                self._fail(BrokenBody(f"cannot decode the body: {exc}"))
                return
            if decode.tail:  # more to come of what has come: wait for the reader
                self._hold()
            if not data:
                return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER:
            self._hold()
        self._wake()

    def _hold(self) -> None:
        """Stop reading the socket until the reader has taken what came."""
        if not self._paused:
            self._paused = True
            self._connection.pause()

    def _finish(self) -> None:
        self.complete = True
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        self.set_exception(exc)
        self._connection.abort()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Connection(asyncio.Protocol):
    """One keep-alive connection upstream, carrying one request at a time.

    ``on_idle`` is told when a response was read whole and the connection may carry another;
    ``on_closed`` when the connection is gone.
    """

    def __init__(
        self, on_idle: Callable[[Connection], None], on_closed: Callable[[Connection], None]
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self._on_idle = on_idle
        self._on_closed = on_closed
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._head: asyncio.Future[Response] | None = None  # the request waiting for its answer's head
        self._fields: list[bytes] = []  # the head's, as they come: name, value, name, value, ...
        self._head_bytes = 0
        self._response: Response | None = None  # the answer being read
        self._until_close = False  # a body with neither a length nor chunks: it ends with the connection
        self._reusable = False
        self.closed = False
        self.idle_since = 0.0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self._response is None and self._head is None:  # bytes nobody asked for, on an idle connection
            self.abort()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:  # a callback below raised
            cause = exc.__context__
            self._error(cause if isinstance(cause, HttpClientError) else MalformedResponse(str(cause)))
            return
        except httptools.HttpParserError as exc:
            self._error(MalformedResponse(f"malformed response: {exc}"))
            return
        except httptools.HttpParserUpgrade:  # not an HttpParserError: 101, a protocol we do not speak
            self._error(MalformedResponse("an upgrade to another protocol"))
            return
        if self._response is None:  # the head is not whole yet
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._error(MalformedResponse(f"a response head over {MAX_HEAD_BYTES} bytes"))

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._on_closed(self)
        response = self._response
        if response is not None and not response.complete:
            if self._until_close and exc is None:
                response._finish()
            else:
                reason = f": {exc}" if exc is not None else ""
                response.set_exception(BrokenBody(f"the connection closed before the body's end{reason}"))
        elif self._head is not None and not self._head.done():
            self._head.set_exception(exc or Disconnected("the connection closed before an answer"))

    def pause_writing(self) -> None:  # a request body larger than the socket's buffer: rare
        pass

    def resume_writing(self) -> None:
        pass

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._response is None:  # (after it: a trailer, of a chunked body; not kept)
            self._fields += (name, value)  # judged whole, in on_headers_complete

    def on_message_begin(self) -> None:
        if self._response is not None:  # a message after the answer: nobody's (parsing stops)
            raise MalformedResponse("a response after the answer")

    def on_headers_complete(self) -> None:
        fields = self._fields
        self._fields = []
        status = self._parser.get_status_code()
        if status < 200:  # 1xx: an interim answer; the real one follows
            return
        if fields:  # the limits, by C loops over the lengths (a head came whole in one read)
            if len(fields) > 2 * MAX_HEADERS:
                raise MalformedResponse(f"more than {MAX_HEADERS} header fields")
            if max(map(len, fields)) > MAX_HEADER_LINE:
                raise LineTooLong(f"a header line over {MAX_HEADER_LINE} bytes")
            if sum(map(len, fields)) > MAX_HEAD_BYTES:
                raise MalformedResponse(f"a response head over {MAX_HEAD_BYTES} bytes")
        framing = dict(zip(map(bytes.lower, fields[::2]), fields[1::2], strict=True))
        self._until_close = b"content-length" not in framing and b"transfer-encoding" not in framing
        self._response = response = Response(self, status, fields, framing)
        head = self._head
        self._head = None
        if head is not None and not head.done():
            head.set_result(response)

    def on_body(self, body: bytes) -> None:
        if self._response is not None:
            self._response._feed(body)

    def on_message_complete(self) -> None:
        response = self._response
        if response is None:
            return  # the end of a 1xx
        if not response.complete:
            self._reusable = self._parser.should_keep_alive() and not self._until_close
            response._finish()

    # the pool's side

    async def request(self, head: bytes, body: bytes) -> Response:
        """Send a request; its answer once the head has come. Cancelled, or failed, the
        connection is closed (it may be mid-answer)."""
        transport = self._transport
        assert transport is not None
        head_waiter: asyncio.Future[Response] = self.loop.create_future()
        self._head = head_waiter
        self._head_bytes = 0
        self._fields = []
        self._response = None
        self._reusable = False
        transport.writelines((head, body))
        try:
            return await head_waiter
        except BaseException:
            self.abort()
            raise

    def release(self, response: Response) -> None:
        if self._response is not response:
            return
        self._response = None
        if response.complete and self._reusable and response._error is None and not self.closed:
            if response._paused:  # its end came, unread: the socket must be read again
                self.resume()
            self.idle_since = self.loop.time()
            self._on_idle(self)
        else:
            self.abort()

    def pause(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.resume_reading()

    def abort(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.abort()

    def _error(self, exc: HttpClientError) -> None:
        """The bytes received cannot be an answer (or follow one that was whole, which stays
        read as it came): fail whoever waits, and drop the connection."""
        self._reusable = False
        response = self._response
        if response is not None:
            if not response.complete:
                response.set_exception(exc)
        elif self._head is not None and not self._head.done():
            self._head.set_exception(exc)
        self.abort()
