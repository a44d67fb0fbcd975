"""Request bodies over the limit are refused with 413, by their header or by counting."""

from __future__ import annotations

from starlette.types import Message, Receive

from genledger.errors import PayloadTooLarge


def limited_receive(receive: Receive, content_length: bytes | None, limit: int) -> Receive:
    """``receive``, refusing a body of more than ``limit`` bytes (``PayloadTooLarge``, a 413).

    A ``Content-Length`` over the limit is refused at the first read, before any byte of the
    body is; without one (a chunked body), the bytes are counted as they come. A length that
    is not a number is left to the server, which has already refused it.
    """
    if content_length is None:
        return _counting(receive, limit)
    try:
        too_large = int(content_length) > limit
    except ValueError:
        too_large = False
    return _refusing(limit) if too_large else receive


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
