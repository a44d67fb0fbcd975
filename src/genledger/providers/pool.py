"""A keep-alive pool of HTTP/1.1 connections (:mod:`genledger.providers.h1`) to one provider.

:meth:`Pool.post` sends a POST on an idle connection to the URL's origin, or a new one (at
most ``limit`` open at once; a request beyond waits for one), and returns the
:class:`~genledger.providers.h1.Response` once its head has come. Each URL's request line
and the provider's headers are encoded once, on first use: a request adds only its length.
A connection idle for longer than ``keepalive_s`` is closed instead of reused, and one the
provider closed leaves the pool as it closes. A failed request is not retried here: whether
another attempt is worth it is the gateway's decision (a POST may have been acted on).
"""

from __future__ import annotations

import asyncio
import collections
import re
import socket
import ssl
from typing import NamedTuple
from urllib.parse import quote, urlsplit

from genledger.providers.h1 import (
    CertificateError,
    ConnectError,
    Connection,
    ConnectTimeout,
    DNSError,
    HttpClientError,
    InvalidURL,
    NotHttpURL,
    Response,
    TLSError,
)

KEEPALIVE_S = 30.0  # an idle connection older than this is closed, not reused
_DEFAULT_PORTS = {"http": 80, "https": 443}
_PATH_SAFE = "/?#[]@!$&'()*+,;=:%-._~"
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # a header name (RFC 9110's token)


class InvalidHeader(HttpClientError):
    """A configured header that cannot be sent (a line break in an API key, say)."""


class Origin(NamedTuple):
    host: str
    port: int
    tls: bool


class _Target(NamedTuple):
    origin: Origin
    head: bytes  # the request line and every header but the length


class Pool:
    """Connections to the origins of the URLs posted to, sending ``headers`` with each request."""

    def __init__(
        self, headers: dict[str, str], *, limit: int, connect_timeout: float, keepalive_s: float = KEEPALIVE_S
    ) -> None:
        self._headers = headers
        self._limit = limit
        self._connect_timeout = connect_timeout
        self._keepalive_s = keepalive_s
        self._targets: dict[str, _Target] = {}
        self._idle: dict[Origin, list[Connection]] = {}
        self._open: set[Connection] = set()
        self._opening = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._tls: ssl.SSLContext | None = None

    async def post(self, url: str, body: bytes) -> Response:
        """POST ``body``; the answer once its head has come."""
        target = self._targets.get(url)
        if target is None:
            target = self._targets[url] = self._target(url)
        connection = await self._acquire(target.origin)
        return await connection.request(target.head + b"Content-Length: %d\r\n\r\n" % len(body), body)

    async def aclose(self) -> None:
        """Close every connection, idle or not."""
        for connection in list(self._open):
            connection.abort()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports close before the loop may go away

    def _target(self, url: str) -> _Target:
        try:
            parts = urlsplit(url)
            port = parts.port
            host = parts.hostname
        except ValueError as exc:
            raise InvalidURL(f"invalid URL: {exc}") from None
        if parts.scheme not in _DEFAULT_PORTS:
            raise NotHttpURL(f"not an HTTP URL: scheme {parts.scheme!r}")
        if not host or parts.username is not None:
            raise InvalidURL("a URL needs a host, and no user name or password")
        try:
            host.encode("ascii")
        except UnicodeEncodeError:
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError:
                raise InvalidURL("the host name cannot be encoded") from None
        default = _DEFAULT_PORTS[parts.scheme]
        shown = f"[{host}]" if ":" in host else host
        authority = shown if port is None or port == default else f"{shown}:{port}"
        # As a browser sends it: what may not stand in a request line is escaped, escapes kept.
        path = quote((parts.path or "/") + (f"?{parts.query}" if parts.query else ""), safe=_PATH_SAFE)
        lines = [f"POST {path} HTTP/1.1", f"Host: {authority}"]
        lines += [f"{name}: {value}" for name, value in self._headers.items()]
        head = "\r\n".join(lines) + "\r\n"
        if "\0" in head or head.count("\n") != len(lines):
            raise InvalidHeader("a header or the URL holds a line break or a NUL")
        if not all(_TOKEN.fullmatch(name) for name in self._headers):
            raise InvalidHeader("a header's name is not a token")
        try:
            encoded = head.encode("latin-1")
        except UnicodeEncodeError:
            raise InvalidHeader("a header holds a character HTTP/1.1 cannot carry") from None
        return _Target(Origin(host, default if port is None else port, parts.scheme == "https"), encoded)

    async def _acquire(self, origin: Origin) -> Connection:
        while True:
            idle = self._idle.get(origin)
            while idle:
                connection = idle.pop()
                if connection.closed:
                    continue
                if connection.loop.time() - connection.idle_since > self._keepalive_s:
                    # Dropped, not closed: a TLS close would wait (in its place) for the provider's.
                    connection.abort()
                    continue
                return connection
            if len(self._open) + self._opening < self._limit:
                return await self._connect(origin)
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self._waiters:  # cancelled while waiting
                    self._waiters.remove(waiter)
                else:  # cancelled as it was woken: the turn it was given passes on
                    self._wake()
                raise

    async def _connect(self, origin: Origin) -> Connection:
        loop = asyncio.get_running_loop()
        tls = self._tls_context() if origin.tls else None
        self._opening += 1
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: Connection(
                        lambda done: self._idle_at(origin, done), lambda gone: self._closed(origin, gone)
                    ),
                    origin.host,
                    origin.port,
                    ssl=tls,
                    server_hostname=origin.host if tls is not None else None,
                )
        except BaseException as exc:
            self._opening -= 1
            self._wake()  # a waiter may connect in the slot this attempt leaves
            raise _connect_error(exc, self._connect_timeout, f"{origin.host}:{origin.port}") from None
        self._opening -= 1
        if connection.closed:  # closed as it opened: as a refusal
            raise ConnectError(None, "the connection closed as it opened")
        self._open.add(connection)
        return connection

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def _idle_at(self, origin: Origin, connection: Connection) -> None:
        idle = self._idle.get(origin)
        if idle is None:
            idle = self._idle[origin] = []
        idle.append(connection)
        self._wake()

    def _closed(self, origin: Origin, connection: Connection) -> None:
        self._open.discard(connection)
        idle = self._idle.get(origin)
        if idle is not None and connection in idle:
            idle.remove(connection)
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


def _connect_error(exc: BaseException, timeout: float, where: str) -> BaseException:
    """What a failed attempt to connect to ``where`` is raised as (a cancellation stays itself).

    The messages name the address, for the log; the caller is told the kind only.
    """
    if isinstance(exc, TimeoutError):
        return ConnectTimeout(f"no connection to {where} within {timeout:g}s")
    if isinstance(exc, socket.gaierror):
        return DNSError(f"cannot resolve {where}: {exc.strerror}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return CertificateError(f"{where}: {getattr(exc, 'verify_message', None) or exc}")
    if isinstance(exc, ssl.SSLError):
        return TLSError(f"{where}: {getattr(exc, 'reason', None) or exc}")
    if isinstance(exc, OSError):
        return ConnectError(exc.errno, f"{exc.strerror or exc} ({where})")
    return exc
