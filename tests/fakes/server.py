"""The aiohttp application shared by the fake upstreams: control API, behaviour dispatch, streaming.

A concrete fake (:mod:`tests.fakes.openai_upstream`, :mod:`tests.fakes.anthropic_upstream`) subclasses
:class:`FakeUpstream` and only renders its wire format (bodies, stream events, error shapes); every
behaviour is carried out here, identically for both.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar, Final

from aiohttp import web

from tests.fakes.control import (
    DIE_MID_STREAM,
    EMPTY,
    ERROR_MID_STREAM,
    GARBAGE,
    OK_BEHAVIOR,
    OVERLOADED,
    SLOW,
    STALL,
    STALL_MID_STREAM,
    STATUS,
    Behavior,
    BehaviorError,
    ControlState,
    JSONDecodeError,
    behavior_from_json,
    dumps,
    loads,
    parse_spec,
)

BEHAVIOR_HEADER: Final = "X-Fake-Behavior"
GARBAGE_BODY: Final = b"<html>oops</html>"
SSE_HEADERS: Final[Mapping[str, str]] = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
}
DEFAULT_COMPLETION_TOKENS: Final = 8
WORD: Final = "tok"  # every reply is this word repeated: one word, one token, one stream chunk
_MID_STREAM: Final = frozenset({STALL_MID_STREAM, DIE_MID_STREAM, ERROR_MID_STREAM})
_STATUS_MESSAGES: Final[dict[int, str]] = {
    400: "Invalid request (fake upstream)",
    401: "Invalid API key (fake upstream)",
    403: "Permission denied (fake upstream)",
    404: "Not found (fake upstream)",
    408: "Request timed out (fake upstream)",
    413: "Request too large (fake upstream)",
    422: "Unprocessable request (fake upstream)",
    429: "Rate limit reached (fake upstream)",
    500: "Internal server error (fake upstream)",
    502: "Bad gateway (fake upstream)",
    503: "Service unavailable (fake upstream)",
    504: "Gateway timeout (fake upstream)",
    529: "Overloaded",
}


@dataclass(slots=True)
class StreamPlan:
    """A rendered stream: what precedes the content, one event per content piece, what follows."""

    head: list[bytes]
    content: list[bytes]
    tail: list[bytes]


def text_of(content: Any) -> str:
    """The text in a message ``content``: a string, or a list of blocks/parts with ``text`` (recursively)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(text_of(part) for part in content)
    if isinstance(content, dict):
        text = content.get("text")
        if isinstance(text, str):
            return text
        return text_of(content.get("content"))
    return ""


@lru_cache(maxsize=1024)
def words(n: int) -> str:
    """The reply text of ``n`` tokens: ``"tok tok ... tok"``."""
    return " ".join([WORD] * n)


def char_tokens(chars: int) -> int:
    """The fakes' tokenizer: 4 characters a token, at least 1."""
    return max(1, chars // 4)


def last_user_text(messages: Any) -> str:
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return text_of(message.get("content"))
    return ""


def format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


class FakeUpstream(abc.ABC):
    """One fake provider: its state, its aiohttp app and the behaviour dispatch.

    Args:
        completion_tokens: words in a reply when the request (or the ``tokens`` param) says nothing.
        delay_ms: latency added before every answer (benchmarks); a behaviour's ``delay_ms`` overrides it.
        models: the ids listed by ``GET /v1/models``.
    """

    kind: ClassVar[str]
    generation_path: ClassVar[str]
    base_path: ClassVar[str]  # appended to http://host:port to make ``base_url``
    overloaded_status: ClassVar[int]
    default_models: ClassVar[tuple[str, ...]]

    def __init__(
        self,
        *,
        completion_tokens: int = DEFAULT_COMPLETION_TOKENS,
        delay_ms: float = 0.0,
        models: Sequence[str] | None = None,
    ) -> None:
        self.state = ControlState()
        self.completion_tokens = completion_tokens
        self.delay_ms = delay_ms
        self.models = tuple(models) if models is not None else self.default_models
        self._counter = 0

    def next_id(self) -> int:
        self._counter += 1
        return self._counter

    # ----------------------------------------------------------------------------------- wire format

    @abc.abstractmethod
    def check(self, request: web.Request, body: dict[str, Any]) -> web.Response | None:
        """A rejection (auth, missing fields) in the provider's error shape, or None."""

    @abc.abstractmethod
    def render_json(self, body: dict[str, Any], behavior: Behavior) -> bytes:
        """The non-streamed success body."""

    @abc.abstractmethod
    def render_stream(self, body: dict[str, Any], behavior: Behavior) -> StreamPlan:
        """The success stream, as SSE events (bytes, each ending with a blank line)."""

    @abc.abstractmethod
    def error_body(self, status: int, message: str, error_type: str | None, code: str | None) -> bytes:
        """An error body in the provider's shape (``error_type`` None: the provider's type for ``status``)."""

    @abc.abstractmethod
    def overloaded_body(self) -> bytes:
        """The body of the ``overloaded`` behaviour (status :attr:`overloaded_status`)."""

    @abc.abstractmethod
    def stream_error_event(self, behavior: Behavior) -> bytes:
        """The in-stream error event of ``error_mid_stream``."""

    @abc.abstractmethod
    def garbage_event(self) -> bytes:
        """A non-JSON stream event, for ``garbage`` on streams."""

    @abc.abstractmethod
    def models_body(self) -> bytes:
        """The ``GET /v1/models`` body."""

    # ------------------------------------------------------------------------------------------- app

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post(self.generation_path, self.handle_generation)
        app.router.add_get("/v1/models", self.handle_models)
        app.router.add_post("/_control/behavior", self.handle_set_behavior)
        app.router.add_post("/_control/reset", self.handle_reset)
        app.router.add_get("/_control/stats", self.handle_stats)
        app.router.add_get("/_control/requests", self.handle_requests)
        return app

    # -- control API

    async def handle_set_behavior(self, request: web.Request) -> web.Response:
        try:
            data = loads(await request.read())
            if not isinstance(data, dict):
                raise BehaviorError("expected a JSON object")
            behavior, times, model = behavior_from_json(data)
        except (JSONDecodeError, BehaviorError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self.state.set_behavior(behavior, times, model)
        return web.json_response({"ok": True, "pending_behaviors": self.state.pending()})

    async def handle_reset(self, request: web.Request) -> web.Response:
        self.state.reset()
        return web.json_response({"ok": True})

    async def handle_stats(self, request: web.Request) -> web.Response:
        return web.Response(body=dumps(self.state.snapshot()), content_type="application/json")

    async def handle_requests(self, request: web.Request) -> web.Response:
        return web.Response(body=dumps(self.state.history()), content_type="application/json")

    async def handle_models(self, request: web.Request) -> web.Response:
        self.state.models_requests += 1
        return web.Response(body=self.models_body(), content_type="application/json")

    # -- generation

    def error_response(
        self, status: int, behavior: Behavior = OK_BEHAVIOR, message: str | None = None
    ) -> web.Response:
        text = behavior.get_str("message") or message or _STATUS_MESSAGES.get(status, f"HTTP {status}")
        body = self.error_body(status, text, behavior.get_str("error_type"), behavior.get_str("code"))
        retry_after = behavior.params.get("retry_after", 1.0 if status == 429 else None)
        headers = {"Retry-After": format_seconds(retry_after)} if retry_after is not None else None
        return web.Response(status=status, body=body, content_type="application/json", headers=headers)

    def _reject(self, request: web.Request, body: Any, response: web.Response) -> web.Response:
        self.state.record(request.method, request.path, request.headers, body, "rejected")
        return response

    async def handle_generation(self, request: web.Request) -> web.StreamResponse:
        state = self.state
        try:
            body = loads(await request.read())
        except JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            return self._reject(request, body, self.error_response(400, message="body is not a JSON object"))
        rejection = self.check(request, body)
        if rejection is not None:
            return self._reject(request, body, rejection)
        spec = request.headers.get(BEHAVIOR_HEADER)
        if spec:
            try:
                behavior = parse_spec(spec)
            except BehaviorError as exc:
                response = self.error_response(400, message=f"bad {BEHAVIOR_HEADER}: {exc}")
                return self._reject(request, body, response)
        else:
            model = body.get("model")
            behavior = state.select(model if isinstance(model, str) else None)
        state.record(request.method, request.path, request.headers, body, behavior.name)
        stream = body.get("stream") is True
        try:
            if behavior is OK_BEHAVIOR:  # the benchmark path
                if self.delay_ms:
                    await asyncio.sleep(self.delay_ms / 1000)
                if stream:
                    return await self._stream(request, self.render_stream(body, behavior), behavior)
                return web.Response(body=self.render_json(body, behavior), content_type="application/json")
            return await self._dispatch(request, body, behavior, stream)
        except asyncio.CancelledError:  # the client went away (handler_cancellation) or shutdown
            state.cancelled_requests += 1
            raise

    async def _dispatch(
        self, request: web.Request, body: dict[str, Any], behavior: Behavior, stream: bool
    ) -> web.StreamResponse:
        name = behavior.name
        if name == STATUS:
            return self.error_response(behavior.get_int("status") or 500, behavior)
        if name == OVERLOADED:
            retry_after = behavior.params.get("retry_after")
            headers = {"Retry-After": format_seconds(retry_after)} if retry_after is not None else None
            return web.Response(
                status=self.overloaded_status,
                body=self.overloaded_body(),
                content_type="application/json",
                headers=headers,
            )
        if name == EMPTY:
            return web.Response(body=b"", content_type="text/event-stream" if stream else "application/json")
        if not stream and name == ERROR_MID_STREAM:
            return self.error_response(500, behavior)
        delay = behavior.get_float("delay_ms", self.delay_ms) / 1000
        if name in (STALL, SLOW) or (name == STALL_MID_STREAM and not stream):
            delay += behavior.get_float("delay")
        if delay:
            await asyncio.sleep(delay)
        if name == GARBAGE:
            if not stream:
                return web.Response(body=GARBAGE_BODY, content_type="application/json")
            plan = self.render_stream(body, behavior)
            return await self._stream(
                request, StreamPlan(plan.head, [self.garbage_event()], plan.tail), behavior
            )
        if stream:
            return await self._stream(request, self.render_stream(body, behavior), behavior)
        data = self.render_json(body, behavior)
        if name == DIE_MID_STREAM:
            return await self._truncated(request, data)
        return web.Response(body=data, content_type="application/json")

    async def _truncated(self, request: web.Request, data: bytes) -> web.StreamResponse:
        """Announce the whole body's length, send half of it, then close the connection."""
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = len(data)
        await response.prepare(request)
        await response.write(data[: len(data) // 2])
        self._drop(request)
        return response

    def _drop(self, request: web.Request) -> None:
        self.state.dropped_connections += 1
        transport = request.transport
        if transport is not None:
            transport.close()  # flushes what was written, then FIN: the body is left incomplete

    async def _stream(self, request: web.Request, plan: StreamPlan, behavior: Behavior) -> web.StreamResponse:
        state = self.state
        name = behavior.name
        pause = behavior.get_float("chunk_delay_ms") / 1000
        response = web.StreamResponse(headers=SSE_HEADERS)
        state.open_streams += 1
        try:
            await response.prepare(request)  # sends the headers at once
            head_delay = behavior.get_float("head_delay")
            if head_delay:
                await asyncio.sleep(head_delay)
            if name in _MID_STREAM:
                cut = behavior.get_int("chunks", 2) or 0
                await _write(response, plan.head + plan.content[:cut], pause)
                if name == DIE_MID_STREAM:
                    self._drop(request)
                    return response
                if name == ERROR_MID_STREAM:
                    await response.write(self.stream_error_event(behavior))
                else:
                    await asyncio.sleep(behavior.get_float("delay"))
                    await _write(response, plan.content[cut:] + plan.tail, pause)
            else:
                await _write(response, plan.head + plan.content + plan.tail, pause)
            await response.write_eof()
            state.completed_streams += 1
            return response
        except asyncio.CancelledError:
            state.cancelled_streams += 1
            raise
        except ConnectionError:  # a write after the client left (without handler cancellation)
            state.cancelled_streams += 1
            state.cancelled_requests += 1
            return response
        finally:
            state.open_streams -= 1


async def _write(response: web.StreamResponse, events: list[bytes], pause: float) -> None:
    if not pause:
        await response.write(b"".join(events))
        return
    for index, event in enumerate(events):
        if index:
            await asyncio.sleep(pause)
        await response.write(event)
