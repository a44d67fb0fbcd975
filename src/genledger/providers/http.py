"""The pooled HTTP client every HTTP provider shares, and its failure translation."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Callable, Coroutine, Mapping
from types import TracebackType
from typing import Any, Protocol

import orjson

from genledger import __version__
from genledger.config import ProviderConfig
from genledger.core.chat import Completion
from genledger.core.deadlines import Deadline, Deadlines
from genledger.core.events import ProviderEvent
from genledger.core.failures import FailureKind, UpstreamFailure, classify_status
from genledger.core.read_batches import before_waiting, current_batch
from genledger.core.retry_after import parse_retry_after
from genledger.providers.base import EventStream, UpstreamCall
from genledger.providers.h1 import LineTooLong, Response
from genledger.providers.idle import ReadDeadline
from genledger.providers.pool import Pool
from genledger.providers.transport import TRANSPORT_ERRORS, Stalled, transport_failure
from genledger.providers.transport import FailureFactory as FailureFactory

_MAX_SSE_LINE = 1024 * 1024  # a longer stream line is INVALID_RESPONSE ("oversized line")
# What the gateway asks of every answer: a provider may compress it (h1 decodes gzip and deflate).
_ACCEPT_ENCODING = "gzip, deflate"
USER_AGENT = f"genledger/{__version__}"  # what the gateway says it is to an upstream
_ERROR_DETAIL_LIMIT = 300  # characters of an upstream's error message quoted in ours


class HttpUpstream:
    """A keep-alive connection pool to one provider, opened on first use in the running loop."""

    def __init__(self, config: ProviderConfig, headers: Mapping[str, str], *, provider_name: str) -> None:
        self._config = config
        # A provider's own User-Agent wins; no cookie is kept (one pool serves every key).
        named = {name.lower() for name in headers}
        sent = dict(headers)
        if "user-agent" not in named:
            sent["User-Agent"] = USER_AGENT
        if "accept-encoding" not in named:
            sent["Accept-Encoding"] = _ACCEPT_ENCODING
        self._pool = Pool(sent, limit=config.max_connections, connect_timeout=config.connect_timeout)
        self._provider_name = provider_name
        # The pool times only the connection. An answer is timed whole by `_deadlines` (one
        # timer for all); a stream's reads by sse_data: the first chunk gets `timeout`, later
        # ones `stream_idle_timeout`.
        self._deadlines = Deadlines()

    def post(self, url: str, body: bytes, failure: FailureFactory) -> _Posting:
        """POST, as an ``async with`` that gives the response once its headers arrived and maps
        transport failures (to the failures of ``failure``), in it and on entering it; the
        response is released as it exits.

        Untimed but for the connection: :meth:`answer` and :meth:`open_stream` time the rest.
        """
        return _Posting(self._pool, url, body, lambda exc: self._failure(exc, failure, answered=False))

    async def answer(self, url: str, body: bytes, failure: FailureFactory, provider_name: str) -> bytes:
        """POST; the whole body of a 200, or the failure its status means, within the provider's
        ``timeout`` (the status, the headers and the whole body: a body that trickles in is
        timed as one that never comes)."""
        with self._answer_deadline(failure):
            async with self.post(url, body, failure) as response:
                if response.status != 200:
                    raise await self.failure_from(response, failure, provider_name)
                return await self.read(response, failure)

    def _answer_deadline(self, failure: FailureFactory) -> Deadline:
        """The provider's ``timeout``, ending in a TIMEOUT failure of ``failure``'s."""
        limit = self._config.timeout
        return self._deadlines.within(
            limit, lambda: self._failure(Stalled(f"no response for {limit:g}s"), failure, answered=False)
        )

    async def read(self, response: Response, failure: FailureFactory) -> bytes:
        """The whole body, mapping a read that stalls or breaks.

        A body over the provider's ``max_response_bytes`` (announced, or counted as it comes,
        after decompression) is INVALID_RESPONSE, and no more of it is read.
        """
        limit = self._config.max_response_bytes
        length = response.content_length
        if length is not None and length > limit:
            raise self._too_large(failure, limit)
        chunks: list[bytes] = []
        size = 0
        try:
            while chunk := await response.readany():
                size += len(chunk)
                if size > limit:
                    raise self._too_large(failure, limit)
                chunks.append(chunk)
        except TRANSPORT_ERRORS as exc:
            raise self._failure(exc, failure, answered=True) from None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _too_large(self, failure: FailureFactory, limit: int) -> UpstreamFailure:
        return failure(
            FailureKind.INVALID_RESPONSE,
            f"{self._provider_name}: the answer is larger than {limit} bytes",
            raw="response too large",
        )

    async def failure_from(
        self, response: Response, failure: FailureFactory, provider_name: str
    ) -> UpstreamFailure:
        """The failure an error response stands for, quoting the provider's own message.

        OpenAI-compatible servers and Anthropic both answer ``{"error": {"type", "message"}}``.
        One that quotes the provider's key (some quote the key they refused) has it replaced
        with ``[redacted]``: the failure's message and raw error reach the caller.
        """
        body = await self.read(response, failure)
        if self._config.api_key is not None and (secret := self._config.api_key.get_secret_value()):
            body = body.replace(secret.encode(), b"[redacted]")
        text = body.decode("utf-8", "replace")
        try:
            raw: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            raw = text
        message = f"{provider_name} answered HTTP {response.status}"
        error = raw.get("error") if isinstance(raw, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            kind = f"{error['type']}: " if isinstance(error.get("type"), str) else ""
            message += f": {kind}{error['message'][:_ERROR_DETAIL_LIMIT]}"
        return failure(
            classify_status(response.status, text),
            message,
            raw=raw,
            upstream_status=response.status,
            retry_after=parse_retry_after(response.headers, time.time()),
        )

    async def open_stream(
        self, url: str, body: bytes, failure: FailureFactory, provider_name: str
    ) -> tuple[contextlib.AbstractAsyncContextManager[Response], Response]:
        """POST a streaming request; the open response, or the failure its error status means.

        The response (and an error's body) must come within the provider's ``timeout``.
        The caller owns the returned context and must exit it when done with the stream.
        """
        context = self.post(url, body, failure)
        with self._answer_deadline(failure):
            response = await context.__aenter__()
            if response.status != 200:
                try:
                    raise await self.failure_from(response, failure, provider_name)
                finally:
                    await context.__aexit__(None, None, None)
        return context, response

    async def sse_data(
        self, response: Response, failure: FailureFactory
    ) -> AsyncGenerator[list[bytes], None]:
        """The ``data:`` payloads of a server-sent event stream, as many as each read brought.

        The first may take the provider's ``timeout`` to come, each later one
        ``stream_idle_timeout`` (any line, a comment or ping too, restarts the wait);
        a longer wait ends the stream with a TIMEOUT failure, and so does a stream still
        going ``stream_timeout`` seconds after its reading began.

        Reads take whatever has arrived (one await per network read, not one per line: a
        read often holds several events) and split it into lines here. The wait for a line
        runs until the line is complete, so a peer that trickles a line byte by byte is
        cut off all the same; a line longer than ``_MAX_SSE_LINE`` is INVALID_RESPONSE.
        """
        deadline = ReadDeadline(
            response, self._config.timeout, "first chunk", lasting=self._config.stream_timeout
        )
        first = True
        pending: list[bytes] = []  # the start of a line whose end has not come yet
        pending_size = 0
        waiting = False  # for a line: from the first read after the last line, to its end
        try:
            while True:
                if not waiting:
                    deadline.start()
                    waiting = True
                block = await response.readany()
                end = block.find(b"\n")
                if block and end < 0:  # no line ended yet: keep waiting for the rest of it
                    pending.append(block)
                    pending_size += len(block)
                    if pending_size > _MAX_SSE_LINE:
                        raise LineTooLong(f"an event stream line over {_MAX_SSE_LINE} bytes")
                    continue
                deadline.stop()
                waiting = False
                if pending:
                    if pending_size + end > _MAX_SSE_LINE:
                        raise LineTooLong(f"an event stream line over {_MAX_SSE_LINE} bytes")
                    pending.append(block)
                    block = b"".join(pending)
                    pending.clear()
                    pending_size = 0
                lines = block.split(b"\n")
                if end >= 0:  # else the stream is over, and its last line ends with it
                    rest = lines.pop()
                    if rest:
                        pending.append(rest)
                        pending_size = len(rest)
                payloads = [line[5:].strip() for line in lines if line.startswith(b"data:")]
                if payloads:
                    if first:
                        first = False
                        deadline.expect(self._config.stream_idle_timeout, "chunk")
                    yield payloads
                if end < 0:
                    return
        except TRANSPORT_ERRORS as exc:
            raise self._failure(exc, failure, answered=True) from None
        finally:
            deadline.cancel()

    def _failure(self, exc: BaseException, failure: FailureFactory, *, answered: bool) -> UpstreamFailure:
        return transport_failure(
            exc, failure, self._provider_name, answered=answered, limit=self._config.timeout
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class StreamTranslator(Protocol):
    """Turns a stream's ``data:`` payloads into events; pure, one per stream."""

    finished: bool
    """The provider said the answer is complete (after it, the stream is over)."""
    complete: bool
    """The answer's end came, though the stream's own end marker may not: a stream that closes
    after it lost nothing (some servers send no ``[DONE]``; a usage that never came is estimated)."""
    unfinished: str
    """How a stream that ends without finishing is described ("early", "before X")."""

    def feed_data(self, data: bytes) -> list[ProviderEvent]:
        """The events of one payload; raises ``UpstreamFailure`` for a broken or failed stream."""
        ...


class HttpProvider(abc.ABC):
    """What every HTTP provider shares: one pooled client, failures in its name, the call shapes.

    A provider says what to send (:meth:`_payload`), how to read a whole answer
    (:meth:`_completion`) and how to turn a stream's ``data:`` payloads into events
    (:meth:`_translator`, one per stream).
    """

    def __init__(self, name: str, config: ProviderConfig, url: str, headers: Mapping[str, str]) -> None:
        self.name = name
        self.display_name = config.shown_as(name)
        self._url = url
        self._http = HttpUpstream(config, headers, provider_name=self.display_name)

    def _failure(self, kind: FailureKind, message: str, **kwargs: Any) -> UpstreamFailure:
        return UpstreamFailure(kind, message, provider_name=self.display_name, **kwargs)

    @abc.abstractmethod
    def _payload(self, call: UpstreamCall, *, stream: bool) -> bytes: ...

    @abc.abstractmethod
    def _completion(self, raw: bytes) -> Completion: ...

    @abc.abstractmethod
    def _translator(self) -> StreamTranslator:
        """A fresh translator for one stream's ``data:`` payloads."""

    async def complete(self, call: UpstreamCall) -> Completion:
        return self._completion(await self._post(self._url, self._payload(call, stream=False)))

    async def stream(self, call: UpstreamCall) -> EventStream:
        return await self._open(self._url, self._payload(call, stream=True), self._translator())

    def _post(self, url: str, body: bytes) -> Coroutine[Any, Any, bytes]:
        """POST ``body`` to ``url``; the whole body of a 200, or the failure its status means.

        The upstream's own coroutine, not one around it: a frame fewer to resume at each wait.
        """
        return self._http.answer(url, body, self._failure, self.display_name)

    async def _open(self, url: str, body: bytes, translator: StreamTranslator) -> EventStream:
        """POST a streaming request to ``url``; its events, read through ``translator``."""
        context, response = await self._http.open_stream(url, body, self._failure, self.display_name)
        return self._relay(context, response, translator)

    async def _relay(
        self,
        context: contextlib.AbstractAsyncContextManager[Response],
        response: Response,
        translator: StreamTranslator,
    ) -> EventStream:
        ended = False  # the stream ended as it should: nothing is being cancelled or thrown
        try:
            # Closed as the relay ends, however it ends: an async generator left open is closed
            # by the garbage collector's hook instead, a task of its own, later (its read timer
            # still armed until then).
            async with contextlib.aclosing(self._http.sse_data(response, self._failure)) as reads:
                async for payloads in reads:
                    # A read's events, then whether the read broke the stream: the events before a
                    # broken payload are relayed first, as they came.
                    events: list[ProviderEvent] = []
                    broken: UpstreamFailure | None = None
                    try:
                        for data in payloads:
                            events += translator.feed_data(data)
                            if translator.finished:
                                break
                    except UpstreamFailure as exc:
                        broken = exc
                    last = len(events) - 1
                    for position, event in enumerate(events):
                        # The writer iterating the relay, read at each event: the first is taken by
                        # the request's task, the rest by the writer's.
                        batch = current_batch()
                        if batch is not None:
                            batch.more = position < last  # frames of this read are held back until its last
                        yield event
                    await before_waiting(current_batch())  # this read is written before the next wait
                    if broken is not None:
                        raise broken
                    if translator.finished:
                        ended = True
                        return
            if translator.complete:
                return  # closed without its end marker, after the answer's end: all there
            raise self._failure(
                FailureKind.INVALID_RESPONSE, f"{self.display_name} ended the stream {translator.unfinished}"
            )
        finally:
            # Also when the caller went away: releasing an unfinished response drops its
            # connection, and a second cancellation must not interrupt that (a task, shielded).
            releasing = context.__aexit__(None, None, None)
            await (releasing if ended else asyncio.shield(releasing))

    async def aclose(self) -> None:
        await self._http.aclose()


class _Posting:
    """:meth:`HttpUpstream.post`'s context: the response, released on the way out, with
    transport errors mapped (a class, not a generator: every request enters one)."""

    __slots__ = ("_body", "_mapped", "_pool", "_response", "_url")

    def __init__(
        self, pool: Pool, url: str, body: bytes, mapped: Callable[[BaseException], UpstreamFailure]
    ) -> None:
        self._pool = pool
        self._url = url
        self._body = body
        self._mapped = mapped
        self._response: Response | None = None

    async def __aenter__(self) -> Response:
        try:
            self._response = response = await self._pool.post(self._url, self._body)
        except TRANSPORT_ERRORS as exc:
            raise self._mapped(exc) from None
        return response

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._response is not None:
            self._response.release()
        if isinstance(error, TRANSPORT_ERRORS) and not isinstance(error, UpstreamFailure):
            raise self._mapped(error) from None
