"""OpenAI's chat completion format, rendered at the edge from the gateway's typed answer.

:func:`completion_json` renders a whole :class:`~genledger.core.events.Answer` as a
``chat.completion``; :func:`sse` renders a :class:`~genledger.core.events.Relay` as
server-sent ``chat.completion.chunk`` events, ending with OpenRouter's usage chunk (with
``cost``) and ``data: [DONE]``. Other wire formats render the same types their own way.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson

from genledger.core.chat import Choice, ToolCall
from genledger.core.events import (
    Answer,
    Failed,
    Finish,
    Head,
    ReasoningDelta,
    RefusalDelta,
    Relay,
    RelayEvent,
    Settled,
    TextDelta,
    ToolCallDelta,
)
from genledger.core.money import to_usd
from genledger.core.usage import Usage

SSE_DONE = b"data: [DONE]\n\n"
_TEXT_SUFFIX = b'},"finish_reason":null,"native_finish_reason":null}]}\n\n'


def usage_json(usage: Usage, cost_pico: int) -> dict[str, Any]:
    """An OpenAI ``usage`` object with OpenRouter's ``cost`` (USD)."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "cost": to_usd(cost_pico),
        "is_byok": False,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def _tool_call_json(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def _message_json(choice: Choice) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": choice.content}
    if choice.refusal is not None:
        message["refusal"] = choice.refusal
    if choice.reasoning is not None:
        message["reasoning"] = choice.reasoning
    if choice.tool_calls:
        message["tool_calls"] = [_tool_call_json(call) for call in choice.tool_calls]
    return message


def completion_json(answer: Answer) -> dict[str, Any]:
    """The ``chat.completion`` body: our generation id, slug and provider; usage with cost."""
    head, completion = answer.head, answer.completion
    body: dict[str, Any] = {
        "id": head.generation_id,
        "object": "chat.completion",
        "created": completion.created or head.created,
        "model": head.model,
        "provider": head.provider_name,
        "system_fingerprint": completion.system_fingerprint,
        "choices": [
            {
                "index": choice.index,
                "message": _message_json(choice),
                "finish_reason": choice.finish_reason,
                "native_finish_reason": choice.native_finish_reason,
                "logprobs": choice.logprobs,
            }
            for choice in completion.choices
        ],
    }
    if completion.usage is not None:
        body["usage"] = usage_json(completion.usage, answer.cost_pico)
    return body


# OpenRouter's canonical error types (``APIErrorType``) by the status a stream ended with.
_STREAM_ERROR_TYPES = {
    400: "invalid_request",
    402: "payment_required",
    408: "timeout",
    413: "payload_too_large",
    429: "rate_limit_exceeded",
    502: "provider_unavailable",
    503: "provider_unavailable",
    524: "timeout",
    529: "provider_overloaded",
}


def stream_error_type(status: int) -> str:
    """OpenRouter's ``error_type`` for a stream that failed with ``status`` ("server" otherwise)."""
    return _STREAM_ERROR_TYPES.get(status, "server")


class ChunkFrames:
    """``chat.completion.chunk`` frames of one stream, all under its head.

    The part every chunk shares is serialized once; each event then costs one small
    ``orjson.dumps`` of its choice.
    """

    __slots__ = ("_head", "_open", "_prefix", "_spoken", "_text_prefix")

    def __init__(self, head: Head) -> None:
        self._head = head
        self._open = {
            "id": head.generation_id,
            "object": "chat.completion.chunk",
            "created": head.created,
            "model": head.model,
            "provider": head.provider_name,
        }
        # '{"id":...,"provider":...' + ',"choices":[' + choice + ']}'
        self._prefix = b"data: " + orjson.dumps(self._open)[:-1] + b',"choices":['
        self._spoken: set[int] = set()  # choices whose first delta (with the role) went out
        self._text_prefix = self._prefix + b'{"index":0,"delta":{"content":'

    def _choice(self, index: int, delta: dict[str, Any], finish: Finish | None = None) -> dict[str, Any]:
        if index not in self._spoken:
            self._spoken.add(index)
            delta["role"] = "assistant"
        return {
            "index": index,
            "delta": delta,
            "finish_reason": finish.reason if finish else None,
            "native_finish_reason": finish.native if finish else None,
        }

    def _frame(self, choice: dict[str, Any]) -> bytes:
        return self._prefix + orjson.dumps(choice) + b"]}\n\n"

    def delta(self, event: RelayEvent) -> bytes:
        if event.__class__ is TextDelta and event.choice == 0 and event.logprobs is None and self._spoken:
            # The commonest frame, more text of the first choice, spliced from constant parts.
            return self._text_prefix + orjson.dumps(event.text) + _TEXT_SUFFIX
        if isinstance(event, TextDelta):
            choice = self._choice(event.choice, {"content": event.text})
            if event.logprobs is not None:
                choice["logprobs"] = event.logprobs
            return self._frame(choice)
        if isinstance(event, ToolCallDelta):
            call: dict[str, Any] = {"index": event.index}
            function: dict[str, Any] = {"arguments": event.arguments}
            if event.id is not None:
                call["id"] = event.id
                call["type"] = "function"
            if event.name is not None:
                function["name"] = event.name
            call["function"] = function
            return self._frame(self._choice(event.choice, {"tool_calls": [call]}))
        if isinstance(event, ReasoningDelta):
            return self._frame(self._choice(event.choice, {"content": "", "reasoning": event.text}))
        if isinstance(event, RefusalDelta):
            return self._frame(self._choice(event.choice, {"refusal": event.text}))
        if isinstance(event, Finish):
            return self._frame(self._choice(event.choice, {}, event))
        raise TypeError(f"not a delta: {event!r}")

    def failed(self, event: Failed) -> bytes:
        """OpenRouter's mid-stream error chunk: the error, and a choice that finished with it.

        Its metadata carries OpenRouter's canonical ``error_type`` (the ``openrouter`` SDK
        refuses a chunk whose metadata lacks it), beside the provider's name and raw error."""
        error: dict[str, Any] = {"code": event.status, "message": event.message}
        if event.metadata is not None:
            error["metadata"] = {"error_type": stream_error_type(event.status), **event.metadata}
        chunk = {
            **self._open,
            "error": error,
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": ""},
                    "finish_reason": "error",
                    "native_finish_reason": "error",
                }
            ],
        }
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def settled(self, event: Settled) -> bytes:
        """The usage-only chunk OpenAI sends last, with OpenRouter's ``cost``."""
        chunk = {**self._open, "choices": [], "usage": usage_json(event.usage or Usage(), event.cost_pico)}
        return b"data: " + orjson.dumps(chunk) + b"\n\n"


async def sse(relay: Relay) -> AsyncIterator[bytes]:
    """The relay's events as server-sent events, ``data: [DONE]`` last."""
    frames = ChunkFrames(relay.head)
    async with contextlib.aclosing(relay.events) as events:
        async for event in events:
            kind = event.__class__
            if kind is Settled:
                yield frames.settled(event)  # type: ignore[arg-type]
            elif kind is Failed:
                yield frames.failed(event)  # type: ignore[arg-type]
            else:
                yield frames.delta(event)
    yield SSE_DONE
