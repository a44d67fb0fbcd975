"""Pure ASGI middleware (it must not buffer streamed responses)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genledger.errors import PayloadTooLarge


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
