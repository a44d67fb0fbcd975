"""Pure ASGI middleware (it must not buffer streamed responses)."""

from __future__ import annotations

import logging

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genledger.api.errors import count_error
from genledger.errors import GatewayError, PayloadTooLarge

log = logging.getLogger("genledger.api")

CALLER_LEFT = 499
"""The status the request log shows for a request whose caller left before sending all of it."""


class UnexpectedErrors:
    """Answer an exception no handler took with the 500 envelope, and keep the connection.

    Contract, for an ``Exception`` raised below this middleware:

    - before ``http.response.start`` went out: it is logged once (``genledger.api``, with its
      traceback), counted as a 500 in the app's metrics, answered with
      ``{"error": {"code": 500, "message": "Internal Server Error"}}``, and not re-raised;
    - after it: it is re-raised untouched, since the status is gone and the body cannot be
      ended cleanly; the server logs it and closes the connection.

    A ``ClientDisconnect`` (the caller left while its body was being read) is no error: it
    is logged at info, without a traceback, as a 499.

    It must not be a Starlette exception handler for ``Exception``: those run inside
    ``ServerErrorMiddleware``, which re-raises after sending, and uvicorn then closes the
    keep-alive connection, so the caller's next request on it fails with ECONNRESET.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            # The caller left (or was cut off) before its whole request came: nobody to answer,
            # nothing went wrong here. The start goes nowhere (the server drops it); the request
            # log sees 499, nginx's "client closed request", not a 500.
            log.info("the caller left before sending its whole request")
            await send({"type": "http.response.start", "status": CALLER_LEFT, "headers": []})
        except Exception as exc:
            # Nothing wraps ``send`` to learn whether the response began (that would cost a
            # call per chunk of every stream): the server refuses a second start (ASGI), so a
            # refused 500 means the response had begun, and the exception goes on untouched.
            error = GatewayError("Internal Server Error")
            response = Response(orjson.dumps(error.envelope()), 500, media_type="application/json")
            try:
                await response(scope, receive, send)
            except Exception:
                raise exc from None
            # The traceback goes to the log, never to the caller.
            log.error("unhandled error", exc_info=exc)
            count_error(Request(scope), 500)


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413, by header or by counting."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_large = int(value) > limit
                except ValueError:
                    too_large = False
                if too_large:
                    receive = _refusing(limit)
                break
        else:
            receive = _counting(receive, limit)
        await self.app(scope, receive, send)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Request body is larger than {limit} bytes", metadata={"max_bytes": limit})


def _refusing(limit: int) -> Receive:
    async def receive() -> Message:
        raise _too_large(limit)

    return receive


def _counting(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _too_large(limit)
        return message

    return counted
