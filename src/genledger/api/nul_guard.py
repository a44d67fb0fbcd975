"""Refuse a NUL character in a request's path or query string, before any route reads it."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from genledger.api.errors import error_response
from genledger.errors import BadRequest


class NulGuard:
    """A 400 for ``%00`` in the path or the query string, whatever the route.

    PostgreSQL's text cannot hold a NUL character: a filter, an id or a key's hash with one
    failed in the database (a 500). A URL can only carry one percent-encoded, so one search
    of the raw bytes covers every parameter of every route.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            b"%00" in scope.get("query_string", b"") or b"%00" in scope.get("raw_path", b"")
        ):
            error = BadRequest("The URL contains a NUL character (%00), which genledger cannot store")
            await error_response(error)(scope, receive, send)
            return
        await self.app(scope, receive, send)
