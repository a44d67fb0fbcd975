"""A request's headers, read through the index built once per request."""

from __future__ import annotations

from starlette.requests import Request

from genledger.api.headers import header


def test_the_first_value_of_a_header_as_starlette_gives_it() -> None:
    raw = [(b"x-title", b"first"), (b"user-agent", b"caf\xe9 1.0"), (b"x-title", b"second")]
    request = Request({"type": "http", "headers": raw})
    assert header(request, b"x-title") == "first" == request.headers.get("x-title")
    # Not UTF-8 (a lone 0xE9): Latin-1, as Starlette reads it.
    assert header(request, b"user-agent") == "caf\u00e9 1.0" == request.headers.get("user-agent")
    assert header(request, b"referer") is None
    raw.append((b"referer", b"late"))  # the index is the request's, built at the first read
    assert header(request, b"referer") is None


def test_a_utf8_value_reads_as_the_text_it_is() -> None:
    title = "caf\u00e9 \u2615"
    request = Request({"type": "http", "headers": [(b"x-title", title.encode())]})
    assert header(request, b"x-title") == title
