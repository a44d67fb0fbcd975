"""Refusing callers that keep failing to authenticate: 429 before any work is done.

:class:`AuthFailureLimit` (pure ASGI, no ``send`` wrapped) answers a request from a blocked
address with the 429 envelope (``metadata.retry_after``, and ``Retry-After``);
:func:`~genledger.api.errors.auth_failed` counts a failure where a 401 is rendered (the
error handler, the dashboard's sign-in). The address is the connection's peer: behind a reverse proxy every
caller shares the proxy's, so set ``limits.auth_failures = 0`` there and limit at the proxy.
"""

from __future__ import annotations

import math

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from genledger.api.errors import count_error
from genledger.errors import TooManyRequests
from genledger.limits.auth_failures import AuthFailureCounter


class AuthFailureLimit:
    """Answers 429 to an address while ``failures`` says it must wait."""

    def __init__(self, app: ASGIApp, failures: AuthFailureCounter) -> None:
        self.app = app
        self.failures = failures

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client") if scope["type"] == "http" else None
        wait = self.failures.retry_after(client[0]) if client else None
        if wait is None:
            await self.app(scope, receive, send)
            return
        seconds = max(1, math.ceil(wait))
        error = TooManyRequests(
            f"Too many failed authentications from this address; retry in {seconds}s",
            metadata={"retry_after": seconds, "reason": "authentication_failures"},
            headers={"Retry-After": str(seconds)},
        )
        response = Response(
            orjson.dumps(error.envelope()), 429, headers=error.headers, media_type="application/json"
        )
        count_error(Request(scope), 429)
        await response(scope, receive, send)
