"""Any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp, ...), over the pooled HTTP client.

The wire format is read here, once, by two pure functions that tests use on their own:
:func:`completion_from_openai` (a ``chat.completion`` body) and :func:`chunk_events` (one
``chat.completion.chunk``).
"""

from __future__ import annotations

import array
import base64
from collections.abc import Callable
from typing import Any

import orjson

from genledger.config import ProviderConfig
from genledger.core.chat import Choice, Completion, ToolCall, normalize_finish_reason
from genledger.core.embeddings import Embeddings
from genledger.core.events import (
    Finish,
    Identified,
    ProviderEvent,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCallDelta,
    UsageReport,
)
from genledger.core.failures import FailureKind, stream_error_kind
from genledger.core.usage import from_openai
from genledger.providers.base import EmbeddingCall, EventStream, PromptCall, UpstreamCall
from genledger.providers.http import FailureFactory, HttpProvider


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _tool_calls(value: Any) -> tuple[ToolCall, ...]:
    if not isinstance(value, list):
        return ()
    calls = []
    for call in value:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            calls.append(
                ToolCall(
                    id=_str(call.get("id")),
                    name=_str(function.get("name")),
                    arguments=_str(function.get("arguments")) or "",
                )
            )
    return tuple(calls)


def _choice(position: int, choice: Any) -> Choice:
    if not isinstance(choice, dict):
        raise ValueError("a choice is not an object")
    message = choice.get("message")
    if not isinstance(message, dict):
        raise ValueError("a choice has no message")
    native = _str(choice.get("finish_reason"))
    return Choice(
        index=_int(choice.get("index"), position),
        content=_str(message.get("content")),
        tool_calls=_tool_calls(message.get("tool_calls")),
        reasoning=_str(message.get("reasoning")) or _str(message.get("reasoning_content")),
        refusal=_str(message.get("refusal")),
        finish_reason=normalize_finish_reason(native),
        native_finish_reason=native,
        logprobs=choice.get("logprobs"),
    )


def completion_from_openai(body: Any) -> Completion:
    """A ``chat.completion`` body as a :class:`Completion`; ``ValueError`` if it is not one."""
    if not isinstance(body, dict):
        raise ValueError("the response is not an object")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ValueError("the response has no choices")
    created = body.get("created")
    return Completion(
        choices=tuple(_choice(position, choice) for position, choice in enumerate(choices)),
        usage=from_openai(body.get("usage")),
        upstream_id=_str(body.get("id")),
        created=created if isinstance(created, int) and not isinstance(created, bool) else None,
        system_fingerprint=_str(body.get("system_fingerprint")),
    )


def _delta_events(choice: dict[str, Any], events: list[ProviderEvent]) -> None:
    index = choice.get("index")
    position = index if index.__class__ is int else 0
    delta = choice.get("delta")
    if delta and isinstance(delta, dict):
        content = delta.get("content")
        if len(delta) == 1 and content.__class__ is str:  # the common chunk: more text, nothing else
            events.append(TextDelta(content, position, choice.get("logprobs")))
        else:
            _parts(delta, content, position, choice.get("logprobs"), events)
    native = choice.get("finish_reason")
    if native and isinstance(native, str):
        events.append(Finish(normalize_finish_reason(native), native, position))


def _parts(
    delta: dict[str, Any], content: Any, position: int, logprobs: Any, events: list[ProviderEvent]
) -> None:
    # OpenRouter says "reasoning"; DeepSeek and vLLM say "reasoning_content".
    reasoning = delta.get("reasoning") or delta.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        events.append(ReasoningDelta(reasoning, position))
    tool_calls = delta.get("tool_calls")
    # An empty content says nothing beside other parts (alone, it opens the turn).
    if isinstance(content, str) and (content or not (reasoning or tool_calls)):
        events.append(TextDelta(content, position, logprobs))
    refusal = delta.get("refusal")
    if isinstance(refusal, str) and refusal:
        events.append(RefusalDelta(refusal, position))
    if isinstance(tool_calls, list):
        for order, call in enumerate(tool_calls):
            if not isinstance(call, dict):
                continue
            function = call.get("function")
            function = function if isinstance(function, dict) else {}
            events.append(
                ToolCallDelta(
                    index=_int(call.get("index"), order),
                    id=_str(call.get("id")),
                    name=_str(function.get("name")),
                    arguments=_str(function.get("arguments")) or "",
                    choice=position,
                )
            )


def chunk_events(chunk: dict[str, Any], upstream_id: str | None) -> list[ProviderEvent]:
    """The events of one ``chat.completion.chunk``; ``upstream_id`` is the id seen so far."""
    events: list[ProviderEvent] = []
    chunk_id = chunk.get("id")
    if chunk_id != upstream_id and isinstance(chunk_id, str):
        events.append(Identified(chunk_id))
    choices = chunk.get("choices")
    if choices and isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict):
                _delta_events(choice, events)
    usage = chunk.get("usage")
    if usage is not None:
        report = from_openai(usage)
        if report is not None:
            events.append(UsageReport(report))
    return events


def _vector(value: Any) -> tuple[float, ...]:
    if isinstance(value, str):  # base64 of little-endian float32, when a server sends it anyway
        floats = array.array("f")
        floats.frombytes(base64.b64decode(value))
        return tuple(floats)
    if not isinstance(value, list) or not all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in value
    ):
        raise ValueError("an embedding is not an array of numbers")
    return tuple(float(x) for x in value)


def embeddings_from_openai(body: Any, inputs: int) -> Embeddings:
    """An ``/embeddings`` body as :class:`Embeddings`; ``ValueError`` unless it has ``inputs`` vectors."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ValueError("the response has no data")
    items = []
    for position, item in enumerate(body["data"]):
        if not isinstance(item, dict):
            raise ValueError("an embedding is not an object")
        items.append((_int(item.get("index"), position), _vector(item.get("embedding"))))
    items.sort(key=lambda pair: pair[0])
    if [index for index, _ in items] != list(range(inputs)):
        raise ValueError(f"expected {inputs} embeddings, indexed from 0")
    return Embeddings(
        vectors=tuple(vector for _, vector in items),
        usage=from_openai(body.get("usage")),
        upstream_id=_str(body.get("id")),
    )


def _text_choice(position: int, choice: Any) -> Choice:
    if not isinstance(choice, dict):
        raise ValueError("a choice is not an object")
    native = _str(choice.get("finish_reason"))
    return Choice(
        index=_int(choice.get("index"), position),
        content=_str(choice.get("text")) or "",
        finish_reason=normalize_finish_reason(native),
        native_finish_reason=native,
        logprobs=choice.get("logprobs"),
    )


def completion_from_text(body: Any) -> Completion:
    """A ``text_completion`` body as a :class:`Completion`; ``ValueError`` if it is not one."""
    if not isinstance(body, dict):
        raise ValueError("the response is not an object")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ValueError("the response has no choices")
    created = body.get("created")
    return Completion(
        choices=tuple(_text_choice(position, choice) for position, choice in enumerate(choices)),
        usage=from_openai(body.get("usage")),
        upstream_id=_str(body.get("id")),
        created=created if isinstance(created, int) and not isinstance(created, bool) else None,
        system_fingerprint=_str(body.get("system_fingerprint")),
    )


def text_chunk_events(chunk: dict[str, Any], upstream_id: str | None) -> list[ProviderEvent]:
    """The events of one streamed ``text_completion`` chunk."""
    events: list[ProviderEvent] = []
    chunk_id = chunk.get("id")
    if chunk_id != upstream_id and isinstance(chunk_id, str):
        events.append(Identified(chunk_id))
    choices = chunk.get("choices")
    for position, choice in enumerate(choices if isinstance(choices, list) else ()):
        if not isinstance(choice, dict):
            continue
        index = _int(choice.get("index"), position)
        text = choice.get("text")
        if isinstance(text, str) and text:
            events.append(TextDelta(text, index, choice.get("logprobs")))
        native = choice.get("finish_reason")
        if native and isinstance(native, str):
            events.append(Finish(normalize_finish_reason(native), native, index))
    report = from_openai(chunk.get("usage"))
    if report is not None:
        events.append(UsageReport(report))
    return events


ChunkEvents = Callable[[dict[str, Any], str | None], list[ProviderEvent]]


class ChunkTranslator:
    """One stream's ``chat.completion.chunk`` payloads in, events out (``[DONE]`` finishes it).

    ``events`` reads one chunk: :func:`chunk_events`, or :func:`text_chunk_events` for a
    prompt completion's stream.
    """

    unfinished = "early"

    def __init__(
        self, failure: FailureFactory, display_name: str, events: ChunkEvents = chunk_events
    ) -> None:
        self.finished = False
        self.complete = False
        self._failure = failure
        self._display_name = display_name
        self._upstream_id: str | None = None
        self._events = events

    def feed_data(self, data: bytes) -> list[ProviderEvent]:
        if data == b"[DONE]":
            self.finished = True
            return []
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise self._failure(
                FailureKind.INVALID_RESPONSE, f"{self._display_name} sent an invalid chunk", raw=data
            ) from None
        if not isinstance(chunk, dict):
            raise self._failure(FailureKind.INVALID_RESPONSE, "chunk is not an object", raw=data)
        if "error" in chunk:
            raise self._failure(stream_error_kind(chunk["error"]), "error in stream", raw=chunk["error"])
        events = self._events(chunk, self._upstream_id)
        if events and events[0].__class__ is Identified:  # it comes first, when it comes
            self._upstream_id = events[0].upstream_id
        if events and not self.complete:
            # The finish came: the answer is whole (its usage, if it never comes, is estimated).
            # It is its chunk's last event, or just before the usage: one look per chunk.
            kind = events[-1].__class__
            if kind is Finish:
                self.complete = True
            elif kind is UsageReport:
                self.complete = any(e.__class__ is Finish for e in events)
        return events


class OpenAICompatProvider(HttpProvider):
    """``POST {base_url}/chat/completions``, streamed or not, asking for usage on streams."""

    def __init__(self, name: str, config: ProviderConfig) -> None:
        assert config.base_url is not None
        headers = {"Content-Type": "application/json"}
        if config.api_key is not None:
            headers["Authorization"] = f"Bearer {config.api_key.get_secret_value()}"
        base_url = config.base_url.rstrip("/")
        super().__init__(name, config, base_url + "/chat/completions", headers)
        self._embeddings_url = base_url + "/embeddings"
        self._completions_url = base_url + "/completions"

    def _payload(self, call: UpstreamCall, *, stream: bool) -> bytes:
        request = call.request
        body: dict[str, Any] = dict(request.params)
        body["model"] = call.upstream_model
        body["messages"] = request.messages
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.user is not None:
            body["user"] = request.user
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return orjson.dumps(body)

    def _completion(self, raw: bytes) -> Completion:
        try:
            return completion_from_openai(orjson.loads(raw))
        except (orjson.JSONDecodeError, ValueError) as exc:
            raise self._failure(
                FailureKind.INVALID_RESPONSE, f"{self.display_name} sent an invalid response: {exc}", raw=raw
            ) from None

    def _translator(self) -> ChunkTranslator:
        return ChunkTranslator(self._failure, self.display_name)

    def _invalid(self, raw: bytes, exc: Exception) -> Exception:
        return self._failure(
            FailureKind.INVALID_RESPONSE, f"{self.display_name} sent an invalid response: {exc}", raw=raw
        )

    async def embed(self, call: EmbeddingCall) -> Embeddings:
        """``POST {base_url}/embeddings``, asking for floats whatever the caller wants."""
        request = call.request
        body: dict[str, Any] = dict(request.params)
        body["model"] = call.upstream_model
        body["input"] = request.inputs
        body["encoding_format"] = "float"
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
        if request.user is not None:
            body["user"] = request.user
        raw = await self._post(self._embeddings_url, orjson.dumps(body))
        try:
            return embeddings_from_openai(orjson.loads(raw), len(request.inputs))
        except (orjson.JSONDecodeError, ValueError) as exc:
            raise self._invalid(raw, exc) from None

    def _prompt_payload(self, call: PromptCall, *, stream: bool) -> bytes:
        request = call.request
        body: dict[str, Any] = dict(request.params)
        body["model"] = call.upstream_model
        body["prompt"] = request.prompt
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.user is not None:
            body["user"] = request.user
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return orjson.dumps(body)

    async def complete_prompt(self, call: PromptCall) -> Completion:
        """``POST {base_url}/completions``."""
        raw = await self._post(self._completions_url, self._prompt_payload(call, stream=False))
        try:
            return completion_from_text(orjson.loads(raw))
        except (orjson.JSONDecodeError, ValueError) as exc:
            raise self._invalid(raw, exc) from None

    async def stream_prompt(self, call: PromptCall) -> EventStream:
        translator = ChunkTranslator(self._failure, self.display_name, text_chunk_events)
        return await self._open(self._completions_url, self._prompt_payload(call, stream=True), translator)
