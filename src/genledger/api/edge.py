"""The one layer of ASGI middleware: what every HTTP request gets around its route.

A layer of middleware is a frame that each await of the request's task resumes, plus a call
for each message it passes on. Six layers (ours and Starlette's error and exception
layers) stood between uvicorn and the router; this one frame does all of their work, and
the concerns stay in their own modules as plain functions:

1. the request's id (``request_log``): set in the scope, returned as ``X-Request-Id``;
2. refusals before any work: an address blocked for failed authentications
   (``auth_failures``), a NUL character in the URL (``nul_guard``);
3. the body's limit (``body_limit``), a 413 at the first read past it;
4. the handlers of the exceptions the routes raise (``GatewayError``, ``HTTPException``),
   for each route (through Starlette's ``scope["starlette.exception_handlers"]``, as its
   ``ExceptionMiddleware`` does) and for the router's own 404 and 405;
5. any other exception: before the response started, logged once with its traceback,
   counted, and answered with the 500 envelope (the connection is kept); after it, re-raised
   for the server, which closes the connection. A caller that left mid-body is no error: 499,
   logged at info;
6. the request's log line, when request lines are on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genledger.api.auth_failures import address_blocked
from genledger.api.body_limit import limited_receive
from genledger.api.errors import error_response
from genledger.api.headers import index
from genledger.api.nul_guard import nul_in_url
from genledger.api.request_log import HEADER as REQUEST_ID_HEADER
from genledger.api.request_log import RequestLines, begin, end, request_id_from
from genledger.errors import GatewayError
from genledger.limits.auth_failures import AuthFailureCounter

log = logging.getLogger("genledger.api")

CALLER_LEFT = 499
"""The status the request log shows for a request whose caller left before sending all of it."""

Handler = Callable[[Request, Exception], Awaitable[Response]]
_CONTENT_LENGTH = b"content-length"


class Edge:
    """Wraps ``app`` (the router) with every request's id, refusals, limits, error handling and log line.

    ``handlers`` render the exceptions they are registered for (by class, the nearest in the
    exception's MRO); ``lines`` writes the request lines (``None``: off).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        handlers: Mapping[type[Exception], Handler],
        max_body_bytes: int,
        auth_failures: AuthFailureCounter | None = None,
        lines: RequestLines | None = None,
    ) -> None:
        self.app = app
        self._handlers = dict(handlers)
        # By class, by status: the shape Starlette's routes read from the scope.
        self._starlette_handlers: tuple[dict[type[Exception], Handler], dict[int, Handler]] = (
            self._handlers,
            {},
        )
        self._max_body_bytes = max_body_bytes
        self._auth_failures = auth_failures
        self._lines = lines

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = index(scope)
        content_length = headers.get(_CONTENT_LENGTH)
        identity = request_id_from(headers.get(REQUEST_ID_HEADER))
        lines = self._lines
        begin(scope, identity, send, summarized=lines is not None)
        scope["starlette.exception_handlers"] = self._starlette_handlers
        header = (REQUEST_ID_HEADER, identity.encode("ascii"))
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                await error_response(refusal, Request(scope))(scope, receive, send_with_id)
            else:
                limited = limited_receive(receive, content_length, self._max_body_bytes)
                await self.app(scope, limited, send_with_id)
        except (GatewayError, HTTPException) as exc:
            # The router's own 404 and 405, and a mount's (static files): no route handled them.
            if status:
                raise
            request = Request(scope, receive)
            await (await self._handler(exc)(request, exc))(scope, receive, send_with_id)
        except ClientDisconnect:
            # The caller left (or was cut off) before its whole request came: nobody to answer,
            # nothing went wrong here. The start goes nowhere (the server drops it); the request
            # log sees 499, nginx's "client closed request", not a 500.
            log.info("the caller left before sending its whole request")
            await send_with_id({"type": "http.response.start", "status": CALLER_LEFT, "headers": []})
        except Exception as exc:
            if status:
                # The status is gone and the body cannot be ended cleanly: the server logs it
                # and closes the connection. Logging here as well would report it twice.
                raise
            handler = self._lookup(exc)  # one for it (the ledger unreachable: 503), or a 500
            if handler is None:
                await _internal_error(scope, receive, send_with_id, exc)
            else:
                await (await handler(Request(scope, receive), exc))(scope, receive, send_with_id)
        finally:
            end(scope)
            if lines is not None:
                lines.write(scope, status or 500, round((time.perf_counter() - started) * 1000, 3))

    def _refusal(self, scope: Scope) -> GatewayError | None:
        if self._auth_failures is not None:
            blocked = address_blocked(self._auth_failures, scope)
            if blocked is not None:
                return blocked
        return nul_in_url(scope)

    def _handler(self, exc: Exception) -> Handler:
        handler = self._lookup(exc)
        if handler is None:
            raise exc
        return handler

    def _lookup(self, exc: Exception) -> Handler | None:
        for cls in type(exc).__mro__:
            handler = self._handlers.get(cls)
            if handler is not None:
                return handler
        return None


async def _internal_error(scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
    """The 500 envelope for ``exc``, counted; its traceback goes to the log, never to the caller."""
    await error_response(GatewayError("Internal Server Error"), Request(scope))(scope, receive, send)
    log.error("unhandled error", exc_info=exc)
