"""The server's HTTP connections, with deadlines on a request's headers and body (slowloris).

uvicorn closes a connection idle *between* requests after ``timeout_keep_alive``, but it
waits for a request's headers and body as long as the caller likes: a caller that opens
connections and sends nothing, or trickles a header or a body a byte at a time, holds them
forever. Here every connection must complete a request's headers within ``header_timeout``
seconds of its opening (or of the first byte after its previous answer), and its body within
``body_timeout`` seconds after them, or it is closed. A body cut off so reaches the app as
the caller leaving (``http.disconnect``), which answers nobody and logs a 499.

When the server shuts down (SIGTERM, or a worker retiring in a rolling restart), a connection
is never closed under a caller who may be sending on it: uvicorn closes every idle kept-alive
connection at once, and a request its caller had just sent on one failed unanswered (a read
error, with no way to know whether it was served). Here, while the server drains, a request on
any connection is answered with ``Connection: close``, and a connection that was not told so
is closed only once it has been idle for ``DRAIN_IDLE_GRACE_S`` (:class:`_Drain`).

The protocol classes are uvicorn's own (httptools when installed, else h11), with a few
methods wrapped; the request that follows runs unchanged. With httptools, the 503 uvicorn
answers beyond ``limit_concurrency`` and its 400 for a request it cannot parse are the JSON
error envelope (h11's stay uvicorn's text).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from genledger.errors import BadRequest, ServiceUnavailable

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools comes with uvicorn[standard]
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_BODY_TIMEOUT_S = 30.0
DRAIN_IDLE_GRACE_S = 1.0
"""How long a draining server keeps an idle connection open for a request already on its way.

A caller sends its next request on a kept-alive connection the moment the previous answer is
read (a few milliseconds under load); one idle longer than this is closed, and only a request
sent in the very instant of that close can still fail, as with any HTTP/1.1 server.
"""


class ServerConfig(uvicorn.Config):
    """uvicorn's config, ``header_timeout`` and ``body_timeout``, which the protocols below read."""

    def __init__(
        self,
        app: Any,
        *,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT_S,
        body_timeout: float = DEFAULT_BODY_TIMEOUT_S,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, **kwargs)
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout


class _HeaderDeadline:
    """Closes the connection when a request's headers take longer than ``header_timeout``, or
    its body longer than ``body_timeout`` once the headers are in.

    Mixed in before a uvicorn HTTP protocol class, whose ``cycle`` is replaced by a new one
    exactly when a request's headers are complete, and whose ``cycle.more_body`` turns false
    when its body is: the signs that each wait is over. A body that came with its headers
    (the common request) arms nothing.
    """

    # Set by the uvicorn protocol class this is mixed into.
    cycle: Any
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)  # type: ignore[call-arg]
        self._header_timeout: float = getattr(config, "header_timeout", DEFAULT_HEADER_TIMEOUT_S)
        self._body_timeout: float = getattr(config, "body_timeout", DEFAULT_BODY_TIMEOUT_S)
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm(self._header_timeout)

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        super().data_received(data)  # type: ignore[misc]
        cycle = self.cycle
        if cycle is not before:  # a request's headers are complete
            self._disarm()
            if cycle.more_body:  # and its body is still to come
                self._arm(self._body_timeout)
        elif self._timer is not None and cycle is not None and not cycle.more_body:
            self._disarm()  # the body is complete
        elif self._timer is None and (cycle is None or cycle.response_complete):
            self._arm(self._header_timeout)  # the first bytes of the next request on a kept-alive connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm(self, seconds: float) -> None:
        self._timer = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self) -> None:
        self._timer = None
        if not self.transport.is_closing():
            self.transport.close()


class DrainingState(ServerState):
    """uvicorn's state shared by a server's connections, and whether the server is draining
    (set by ``server.GracefulServer`` as it stops accepting)."""

    draining: bool = False


class _Drain:
    """A shutdown that closes no connection under a caller who may be sending a request on it.

    Mixed in before a uvicorn HTTP protocol class, replacing its ``shutdown()``: a request whose
    answer has not started yet is answered with ``Connection: close`` (as uvicorn does), and a
    connection that is idle, between requests or accepted and not yet read, or whose answer is
    under way, is closed once it has been idle for ``DRAIN_IDLE_GRACE_S``, through uvicorn's
    keep-alive timer, which the next request's first bytes cancel. Every request that starts
    while the server drains, on any connection (one accepted as the server stopped accepting
    too), is answered with ``Connection: close``. (h11, the fallback, closes the connection after
    the answer but does not write that header.)
    """

    # Set by the uvicorn protocol class this is mixed into.
    cycle: Any
    loop: asyncio.AbstractEventLoop
    server_state: ServerState
    timeout_keep_alive_task: asyncio.TimerHandle | None
    timeout_keep_alive_handler: Any
    _unset_keepalive_if_required: Any

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        if self._draining():  # accepted just before the server stopped accepting
            self._close_when_idle()

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        super().data_received(data)  # type: ignore[misc]
        # (The flag read inline: this runs for every read of every connection.)
        if self.cycle is not before and getattr(self.server_state, "draining", False):  # a new request
            self.cycle.keep_alive = False

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if getattr(self.server_state, "draining", False) and self.timeout_keep_alive_task is not None:
            self._close_when_idle()  # an answer under way at the shutdown, written with keep-alive

    def shutdown(self) -> None:
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and not cycle.response_started:
            cycle.keep_alive = False
        elif cycle is None or cycle.response_complete:
            self._close_when_idle()
        # else its answer is under way: on_response_complete arms the grace when it ends.

    def _draining(self) -> bool:
        # A plain uvicorn.Server's state has no flag: only shutdown() then drains.
        return getattr(self.server_state, "draining", False)

    def _close_when_idle(self) -> None:
        self._unset_keepalive_if_required()
        self.timeout_keep_alive_task = self.loop.call_later(
            DRAIN_IDLE_GRACE_S, self.timeout_keep_alive_handler
        )


class H11WithHeaderDeadline(_Drain, _HeaderDeadline, H11Protocol):
    """h11's protocol with the header deadline and the drain."""


_BUSY = ServiceUnavailable("The gateway has too many connections or requests at once; retry shortly")
_BUSY_BODY = orjson.dumps(_BUSY.envelope())


async def too_busy(scope: Any, receive: Any, send: Any) -> None:
    """uvicorn's answer beyond ``limit_concurrency``, as the error envelope (its own is text)."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_BUSY_BODY)).encode()),
        (b"retry-after", b"1"),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": _BUSY_BODY, "more_body": False})


if HttpToolsProtocol is not None:

    class HttpToolsWithHeaderDeadline(_Drain, _HeaderDeadline, HttpToolsProtocol):
        """httptools' protocol with the header deadline, the drain, and the envelope for its 503
        and for the 400 it answers a request it cannot parse (raw non-ASCII in the request line, ...)."""

        def _start_asgi_task(self, cycle: Any, app: Any) -> None:
            super()._start_asgi_task(cycle, too_busy if app is service_unavailable else app)

        def send_400_response(self, msg: str) -> None:
            body = orjson.dumps(BadRequest(f"{msg.rstrip('.')}: not a request HTTP/1.1 can parse").envelope())
            head = [b"HTTP/1.1 400 Bad Request\r\n"]
            head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
            head.append(b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body))
            self.transport.write(b"".join((*head, b"connection: close\r\n\r\n", body)))
            self.transport.close()

    PROTOCOL: type[asyncio.Protocol] = HttpToolsWithHeaderDeadline
else:  # pragma: no cover
    PROTOCOL = H11WithHeaderDeadline
"""The protocol class :func:`~genledger.api.server.serve` runs: httptools' when installed."""
