"""A request's headers, read through the index built once per request."""

from __future__ import annotations

from starlette.requests import Request

from genledger.api.headers import header


def test_the_first_value_of_a_header_as_starlette_gives_it() -> None:
    raw = [(b"x-title", b"first"), (b"user-agent", b"caf\xe9"), (b"x-title", b"second")]
    request = Request({"type": "http", "headers": raw})
    assert header(request, b"x-title") == "first" == request.headers.get("x-title")
    assert header(request, b"user-agent") == "caf\u00e9" == request.headers.get("user-agent")
    assert header(request, b"referer") is None
    raw.append((b"referer", b"late"))  # the index is the request's, built at the first read
    assert header(request, b"referer") is None
