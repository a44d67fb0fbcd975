"""A streamed answer (server-sent events) that stops its stream when the caller leaves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from genledger.api.request_log import body_send
from genledger.core.events import Outcome
from genledger.core.read_batches import open_batch

_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
MAX_HELD_FRAMES = 64
"""Frames of one upstream read written at most together (``core/read_batches.py``)."""


class EventStreamResponse(Response):
    """Sends each frame of ``frames`` as it comes; closes ``frames`` however the answer ends.

    Frames the upstream delivered in one read are written in one write (the provider says
    which: ``core/read_batches.py``), and so are the last ones the gateway adds (the usage,
    ``[DONE]``) with the end of the body; any other is written as it comes.

    The frames are sent from a task of their own: a coroutine resumed for each frame resumes
    every frame that awaits it, and the request's task awaits through the whole middleware
    stack and router (a dozen frames, about a tenth of a relayed chunk's CPU, measured with
    py-spy on 600 slow streams). The request's task waits for that task once.

    Starlette's ``StreamingResponse`` learns that the caller left (on servers of ASGI spec
    2.3, uvicorn's) from a task group per response, which cost about 5% of a streamed
    request's CPU. Here one plain task waits for ``http.disconnect`` and cancels the sending
    task; the stream's own clean-up (recording the cancelled generation) runs as the frames
    are cancelled and closed, and the app returns normally.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        frames: AsyncIterator[bytes],
        headers: Mapping[str, str] | None = None,
        *,
        outcome: Outcome | None = None,
    ) -> None:
        self.frames = frames
        self.outcome = outcome  # the relay's, when the frames render one: how it ended
        self.status_code = 200
        self.background = None
        self.init_headers({**_STREAM_HEADERS, **(headers or {})})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ended = False  # the last frame is on its way: a disconnect now changes nothing
        left = False
        send_body = body_send(scope, send)  # the request log sees the start: frames skip it

        async def pump() -> None:
            nonlocal ended
            held: list[bytes] = []

            async def flush() -> None:
                if held:
                    body = held[0] if len(held) == 1 else b"".join(held)
                    held.clear()
                    await send_body({"type": "http.response.body", "body": body, "more_body": True})

            batch = open_batch(flush)  # the provider says when frames of one read follow
            async for frame in self.frames:
                held.append(frame)
                if not batch.more or len(held) >= MAX_HELD_FRAMES:
                    await flush()
            ended = True
            # What is still held goes out with the end of the body, in one write.
            body = b"".join(held)
            await send_body({"type": "http.response.body", "body": body, "more_body": False})

        async def watch() -> None:
            nonlocal left
            while (await receive())["type"] != "http.disconnect":
                pass
            if not ended:
                left = True
                pumping.cancel()

        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            pumping = asyncio.create_task(pump())
            watcher = asyncio.create_task(watch())
            try:
                # Cancelling this task (a server shutting down) cancels the one it awaits.
                await pumping
            except asyncio.CancelledError:
                if not left or not pumping.cancelled():
                    raise
            finally:
                watcher.cancel()
        finally:
            aclose = getattr(self.frames, "aclose", None)
            if aclose is not None:
                await aclose()
