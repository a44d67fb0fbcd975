"""Anthropic's Messages format, rendered at the edge from the gateway's typed answer.

:func:`message_json` renders a whole :class:`~genledger.core.events.Answer` as a
``message``; :func:`sse` renders a :class:`~genledger.core.events.Relay` as Anthropic's
stream (``message_start``, content blocks, ``message_delta`` with the usage and stop
reason, ``message_stop``); :func:`error_json` is any error in Anthropic's shape,
``{"type": "error", "error": {"type", "message"}}``. The stop reason is the provider's own
when it is one of Anthropic's (an Anthropic provider's answer passes through as it came),
else the chat finish reason's Anthropic name.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson

from genledger.core.chat import Choice
from genledger.core.events import (
    Answer,
    Failed,
    Finish,
    Head,
    ReasoningDelta,
    RefusalDelta,
    Relay,
    Settled,
    TextDelta,
    ToolCallDelta,
)
from genledger.core.usage import Usage

STOP_REASONS = frozenset({"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"})
_FROM_FINISH = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    524: "timeout_error",
    529: "overloaded_error",
}
"""Anthropic's error type for each status; any other is an ``api_error``."""


def stop_reason(reason: str | None, native: str | None) -> str | None:
    if native in STOP_REASONS:
        return native
    if reason is None:
        return None
    return _FROM_FINISH.get(reason, "end_turn")


def usage_json(usage: Usage | None) -> dict[str, Any]:
    """Anthropic's usage: input tokens exclude cache reads and writes, which it counts apart."""
    usage = usage or Usage()
    return {
        "input_tokens": max(usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens, 0),
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
    }


def error_json(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}


def _content(choice: Choice) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if choice.reasoning:
        blocks.append({"type": "thinking", "thinking": choice.reasoning, "signature": ""})
    text = (choice.content or "") + (choice.refusal or "")
    if text:
        blocks.append({"type": "text", "text": text})
    for call in choice.tool_calls:
        try:
            arguments = orjson.loads(call.arguments or "{}")
        except orjson.JSONDecodeError:
            arguments = {"arguments": call.arguments}  # a tool_use input must be an object
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": arguments})
    return blocks


def _message(
    head: Head,
    content: list[dict[str, Any]],
    reason: str | None,
    usage: Usage | None,
    stop_sequence: str | None = None,
) -> dict[str, Any]:
    return {
        "id": head.generation_id,
        "type": "message",
        "role": "assistant",
        "model": head.model,
        "provider": head.provider_name,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": stop_sequence,
        "usage": usage_json(usage),
    }


def message_json(answer: Answer) -> dict[str, Any]:
    """The ``message`` of a whole answer."""
    completion = answer.completion
    choice = completion.choices[0] if completion.choices else Choice()
    reason = stop_reason(choice.finish_reason, choice.native_finish_reason)
    return _message(answer.head, _content(choice), reason, completion.usage, choice.stop_sequence)


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **payload}) + b"\n\n"


class MessageEvents:
    """Anthropic's stream events of one answer: one content block open at a time."""

    def __init__(self, head: Head) -> None:
        self._head = head
        self._blocks = 0
        self._open: str | None = None  # the kind of the open block: text, thinking or tool_use
        self._tools: dict[int, int] = {}  # tool call index -> its block index
        self._reason: str | None = None
        self._stop_sequence: str | None = None
        self._ended = False

    def start(self) -> bytes:
        return _event("message_start", {"message": _message(self._head, [], None, None)})

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        return [_event("content_block_stop", {"index": self._blocks - 1})]

    def _begin(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        frames = self._close()
        self._open = kind
        frames.append(_event("content_block_start", {"index": self._blocks, "content_block": block}))
        self._blocks += 1
        return frames

    def _text(self, kind: str, text: str) -> list[bytes]:
        frames: list[bytes] = []
        if self._open != kind:
            empty = (
                {"type": "thinking", "thinking": "", "signature": ""}
                if kind == "thinking"
                else {"type": "text", "text": ""}
            )
            frames = self._begin(kind, empty)
        delta = (
            {"type": "thinking_delta", "thinking": text}
            if kind == "thinking"
            else {"type": "text_delta", "text": text}
        )
        frames.append(_event("content_block_delta", {"index": self._blocks - 1, "delta": delta}))
        return frames

    def _call(self, event: ToolCallDelta) -> list[bytes]:
        frames: list[bytes] = []
        if event.index not in self._tools:
            block: dict[str, Any] = {"type": "tool_use", "id": event.id, "name": event.name, "input": {}}
            frames = self._begin("tool_use", block)
            self._tools[event.index] = self._blocks - 1
        index = self._tools[event.index]
        if event.arguments:
            delta = {"type": "input_json_delta", "partial_json": event.arguments}
            frames.append(_event("content_block_delta", {"index": index, "delta": delta}))
        return frames

    def frames(self, event: Any) -> list[bytes]:
        """The frames one relay event makes (none after the message has ended)."""
        if self._ended:
            return []
        kind = event.__class__
        if kind is TextDelta or kind is RefusalDelta:
            return self._text("text", event.text) if event.text else []
        if kind is ReasoningDelta:
            return self._text("thinking", event.text) if event.text else []
        if kind is ToolCallDelta:
            return self._call(event)
        if kind is Finish:
            if event.choice == 0:
                self._reason = stop_reason(event.reason, event.native)
                self._stop_sequence = event.stop_sequence
            return self._close()
        self._ended = True
        frames = self._close()
        if kind is Settled:
            delta = {"stop_reason": self._reason, "stop_sequence": self._stop_sequence}
            frames.append(_event("message_delta", {"delta": delta, "usage": usage_json(event.usage)}))
            frames.append(_event("message_stop", {}))
        elif kind is Failed:
            frames.append(_event("error", error_json(event.status, event.message)))
        else:
            raise TypeError(f"not a relay event: {event!r}")
        return frames


async def sse(relay: Relay) -> AsyncIterator[bytes]:
    """The relay's events as Anthropic's server-sent events."""
    events = MessageEvents(relay.head)
    yield events.start()
    async with contextlib.aclosing(relay.events) as stream:
        async for event in stream:
            frames = events.frames(event)
            if frames:
                yield b"".join(frames)
