"""Refuse a NUL character in a request's path or query string, before any route reads it."""

from __future__ import annotations

from starlette.types import Scope

from genledger.errors import BadRequest


def nul_in_url(scope: Scope) -> BadRequest | None:
    """A 400 for ``%00`` in the path or the query string, whatever the route; else ``None``.

    PostgreSQL's text cannot hold a NUL character: a filter, an id or a key's hash with one
    failed in the database (a 500). A URL can only carry one percent-encoded, so one search
    of the raw bytes covers every parameter of every route.

    ``find``, not ``in``: on Python 3.11, ``bytes in bytes`` first tries its operand as an
    integer (a byte value) and makes and drops a TypeError before it searches.
    """
    if scope.get("query_string", b"").find(b"%00") != -1 or scope.get("raw_path", b"").find(b"%00") != -1:
        return BadRequest("The URL contains a NUL character (%00), which genledger cannot store")
    return None
