"""``Idempotency-Key`` on inference routes (chat, Responses, Messages, legacy completions,
embeddings): a retry is answered from the first call, never sent upstream again. A route opts
in with one line: ``@idempotent``.

The first call claims the key (per API key) and runs; its answer, as sent (a whole body, or
every byte of a stream), is kept when it succeeded, up to ``Services.idempotency_max_bytes``
(``MAX_STORED_BYTES``), for ``TTL``.
A retry while the first runs is a 409 with ``Retry-After``; with another body a 422; after it,
the same status and bytes again (the same generation id), marked ``Idempotent-Replayed``. A
first call that fails before answering releases the claim: nothing was charged, so a retry
runs. So does a stream that did not reach its end (its caller cut it, or it broke): the
caller never had the whole answer, which a retry exists to get; replaying the part it had
would end without ``[DONE]`` every time. The cut part stays charged (it was generated), and
the retry runs, and is charged, afresh.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from genledger.api.event_stream import EventStreamResponse
from genledger.api.headers import header
from genledger.api.responses import services_of
from genledger.core.events import Outcome
from genledger.core.idempotency import (
    MAX_KEY_LENGTH,
    Claimed,
    Finished,
    Mismatch,
    Running,
    StoredAnswer,
    fingerprint,
)
from genledger.core.stores import IdempotencyStore
from genledger.errors import BadRequest, Conflict, UnprocessableEntity

HEADER = b"idempotency-key"
RETRY_AFTER_S = 1
Handler = Callable[[Request], Awaitable[Response]]
Credential = Callable[[Request], str | None]
"""Where a route reads the caller's API key, as an ``Authorization`` value."""


def bearer(request: Request) -> str | None:
    return header(request, b"authorization")


def _idempotency_key(value: str) -> str:
    if not 1 <= len(value) <= MAX_KEY_LENGTH or not value.isprintable():
        raise BadRequest(
            f"'Idempotency-Key' must be 1 to {MAX_KEY_LENGTH} printable characters",
            metadata={"param": "Idempotency-Key"},
        )
    return value


def _replay(answer: StoredAnswer, idempotency_key: str) -> Response:
    if answer.body is None:
        raise Conflict(
            f"The first call with Idempotency-Key {idempotency_key!r} answered more than can be "
            "kept to send again; it was charged once and is not run again",
            metadata={"idempotency_key": idempotency_key},
        )
    headers = {"Idempotent-Replayed": "true"}
    if answer.media_type.startswith("text/event-stream"):
        body = answer.body

        async def again() -> AsyncIterator[bytes]:
            yield body

        return EventStreamResponse(again(), headers=headers)
    return Response(answer.body, status_code=answer.status, media_type=answer.media_type, headers=headers)


class _Recorder:
    """Collects an answer's bytes up to the bound, and keeps it once it is whole."""

    def __init__(self, store: IdempotencyStore, key_id: str, idempotency_key: str, limit: int) -> None:
        self._store, self._key_id, self._idempotency_key = store, key_id, idempotency_key
        self._limit = limit
        self._chunks: list[bytes] = []
        self._size = 0

    def add(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size <= self._limit:
            self._chunks.append(chunk)

    async def keep(self, status: int, media_type: str) -> None:
        body = b"".join(self._chunks) if self._size <= self._limit else None
        await self._store.finish(self._key_id, self._idempotency_key, StoredAnswer(status, media_type, body))

    async def release(self) -> None:
        await self._store.release(self._key_id, self._idempotency_key)


def idempotent(handler: Handler, *, credential: Credential = bearer) -> Handler:
    """``handler`` honouring ``Idempotency-Key`` (a route without the header runs as before);
    ``credential`` reads the API key as the route does."""

    async def route(request: Request) -> Response:
        raw = header(request, HEADER)
        if raw is None:
            return await handler(request)
        idempotency_key = _idempotency_key(raw)
        services = services_of(request)
        store = services.idempotency
        if store is None:
            raise BadRequest("This gateway keeps no idempotency keys", metadata={"param": "Idempotency-Key"})
        key = await services.auth.authenticate(credential(request))
        call = fingerprint(request.url.path, await request.body())
        claim = await store.claim(
            key.id, idempotency_key, call, datetime.now(UTC), services.idempotency_lease
        )
        if isinstance(claim, Finished):
            return _replay(claim.answer, idempotency_key)
        if isinstance(claim, Running):
            raise Conflict(
                f"A call with Idempotency-Key {idempotency_key!r} is still running; retry when it ends",
                metadata={"idempotency_key": idempotency_key},
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        if isinstance(claim, Mismatch):
            raise UnprocessableEntity(
                f"Idempotency-Key {idempotency_key!r} was used with another request body",
                metadata={"idempotency_key": idempotency_key},
            )
        assert isinstance(claim, Claimed)
        recorder = _Recorder(store, key.id, idempotency_key, services.idempotency_max_bytes)
        try:
            response = await handler(request)
        except BaseException:
            await recorder.release()
            raise
        media_type = response.headers.get("content-type", "application/octet-stream")
        if isinstance(response, EventStreamResponse):
            response.frames = _kept(
                response.frames, recorder, response.status_code, media_type, services.spawn, response.outcome
            )
            return response
        if isinstance(response, StreamingResponse):
            response.body_iterator = _kept(
                response.body_iterator, recorder, response.status_code, media_type, services.spawn
            )
            return response
        recorder.add(bytes(response.body))
        await recorder.keep(response.status_code, media_type)
        return response

    return route


async def _kept(
    chunks: AsyncIterable[Any],
    recorder: _Recorder,
    status: int,
    media_type: str,
    spawn: Callable[[Any], None],
    outcome: Outcome | None = None,
) -> AsyncIterator[bytes]:
    """The stream, kept as it is sent. The last chunk waits until the whole is kept, so a retry
    after the stream's end finds the answer; one cut short frees its key, in the background
    (the task is being torn down), and so does one that ended with an error (``outcome``).
    Closing it closes ``chunks`` at once: the relay under it records a stream cut short, and
    its request's line waits for that record, only once it is closed."""
    pending: bytes | None = None
    kept = False
    try:
        async for chunk in chunks:
            data = chunk if isinstance(chunk, bytes) else str(chunk).encode()
            if pending is not None:
                yield pending
            recorder.add(data)
            pending = data
        if outcome is not None and outcome.failed:
            await recorder.release()  # not whole: a retry runs afresh
        else:
            await recorder.keep(status, media_type)
        kept = True
        if pending is not None:
            yield pending
    finally:
        if not kept:
            spawn(recorder.release())
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
