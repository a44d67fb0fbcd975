"""A request's headers by name, read once a request.

Starlette's ``request.headers.get`` reads every header again for each name asked for, and a
request's edge and route ask for about ten. The edge indexes them as the request arrives (a
dict built in C) and everything after looks names up in that index.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import Scope

_INDEX = "genledger.headers"


def index(scope: Scope) -> dict[bytes, bytes]:
    """The request's headers by (lower-case) name, each its first value; built once per scope."""
    found: dict[bytes, bytes] | None = scope.get(_INDEX)
    if found is None:
        # reversed: of a name sent twice, the first value is the one kept.
        found = scope[_INDEX] = dict(reversed(scope["headers"]))
    return found


def header(request: Request, name: bytes) -> str | None:
    """The value of the request's header ``name`` (lower case): its first, as Starlette's
    ``request.headers.get`` gives, but read as UTF-8 where it is that.

    HTTP carries header values as bytes; a client that sends ``X-Title: café`` sends UTF-8,
    and Latin-1 (Starlette's reading) would record ``cafÃ©``. Bytes that are not UTF-8 are
    read as Latin-1, which reads any byte."""
    value = index(request.scope).get(name)
    if value is None:
        return None
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value.decode("latin-1")
