"""OpenAI's Responses format, rendered at the edge from the gateway's typed answer.

:func:`response_json` renders a whole :class:`~genledger.core.events.Answer` as a
``response`` object; :func:`sse` renders a :class:`~genledger.core.events.Relay` as the
typed server-sent events (``response.created`` ... ``response.output_text.delta`` ...
``response.completed``). Output items: a ``reasoning`` item for reasoning text, a
``message`` item for text (another for a refusal), a ``function_call`` item per tool call.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from genledger.api.openai_chat import SSE_DONE
from genledger.api.responses_wire import ResponsesRequest
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
from genledger.core.money import to_usd
from genledger.core.usage import Usage

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
_DELTA_EVENTS = {
    "output_text": "response.output_text.delta",
    "refusal": "response.refusal.delta",
    "reasoning": "response.reasoning_text.delta",
}


def usage_json(usage: Usage | None, cost_pico: int) -> dict[str, Any]:
    """The Responses ``usage`` object, with OpenRouter's ``cost`` (USD)."""
    usage = usage or Usage()
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
        "cost": to_usd(cost_pico),
        "is_byok": False,
    }


def _item_id(prefix: str, head: Head, index: int) -> str:
    return f"{prefix}_{head.generation_id.removeprefix('gen-')}_{index}"


def _echo_tools(request: ResponsesRequest) -> list[dict[str, Any]]:
    """The request's function tools, with the keys a response repeats them with."""
    return [
        {
            "type": "function",
            "name": tool["function"]["name"],
            "description": tool["function"].get("description"),
            "parameters": tool["function"].get("parameters"),
            "strict": tool["function"].get("strict"),
        }
        for tool in request.chat.params.get("tools", ())
    ]


def _response(
    request: ResponsesRequest,
    head: Head,
    *,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    incomplete = _INCOMPLETE.get(finish_reason or "")
    if status == "completed" and incomplete is not None:
        status = "incomplete"
    texts = [
        part["text"]
        for item in output
        if item["type"] == "message"
        for part in item["content"]
        if part["type"] == "output_text"
    ]
    return {
        "id": head.generation_id,
        "object": "response",
        "created_at": head.created,
        "completed_at": int(time.time()) if status in ("completed", "incomplete") else None,
        "status": status,
        "error": error,
        "incomplete_details": {"reason": incomplete} if status == "incomplete" else None,
        "model": head.model,
        "provider": head.provider_name,
        "output": output,
        "output_text": "".join(texts),
        "usage": usage,
        "previous_response_id": None,
        "store": False,
        "background": False,
        "truncation": "disabled",
        **request.echo,
        "tools": _echo_tools(request),
    }


def _output(head: Head, choice: Choice | None) -> list[dict[str, Any]]:
    if choice is None:
        return []
    output: list[dict[str, Any]] = []
    if choice.reasoning:
        output.append(_reasoning_item(_item_id("rs", head, len(output)), choice.reasoning, "completed"))
    if choice.content or not (choice.tool_calls or choice.refusal or choice.reasoning):
        output.append(_message_item(_item_id("msg", head, len(output)), _text_part(choice.content or "")))
    if choice.refusal:
        output.append(_message_item(_item_id("msg", head, len(output)), _refusal_part(choice.refusal)))
    for call in choice.tool_calls:
        item_id = _item_id("fc", head, len(output))
        output.append(_call_item(item_id, call.id or item_id, call.name or "", call.arguments, "completed"))
    return output


def response_json(request: ResponsesRequest, answer: Answer) -> dict[str, Any]:
    """The ``response`` object of a whole answer."""
    completion = answer.completion
    choice = completion.choices[0] if completion.choices else None
    return _response(
        request,
        answer.head,
        status="completed",
        output=_output(answer.head, choice),
        usage=usage_json(completion.usage, answer.cost_pico) if completion.usage else None,
        finish_reason=completion.finish_reason,
    )


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _refusal_part(text: str) -> dict[str, Any]:
    return {"type": "refusal", "refusal": text}


def _message_item(item_id: str, part: dict[str, Any] | None, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": [part] if part is not None else [],
    }


def _reasoning_item(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    content = [{"type": "reasoning_text", "text": text}] if text is not None else []
    return {"type": "reasoning", "id": item_id, "summary": [], "content": content, "status": status}


def _call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


@dataclass(slots=True)
class _Open:
    """An output item under way: its kind (``output_text``, ``refusal``, ``reasoning`` or
    ``function_call``), its place in the output, and what it has said so far."""

    kind: str
    index: int
    item_id: str
    text: list[str] = field(default_factory=list)
    call_id: str = ""
    name: str = ""


class ResponseEvents:
    """The typed events of one streamed response, each numbered, as SSE frames."""

    def __init__(self, request: ResponsesRequest, head: Head) -> None:
        self._request = request
        self._head = head
        self._sequence = 0
        self._output: list[dict[str, Any] | None] = []  # None: an item still open
        self._current: _Open | None = None  # the open text, refusal or reasoning item
        self._calls: dict[int, _Open] = {}  # open function calls by their tool call index
        self._finish: str | None = None
        self._ended = False

    def _event(self, kind: str, **payload: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self._sequence, **payload}
        self._sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def _snapshot(self, status: str, **extra: Any) -> dict[str, Any]:
        output = [item for item in self._output if item is not None]
        return _response(self._request, self._head, status=status, output=output, **extra)

    def start(self) -> bytes:
        response = self._snapshot("in_progress")
        return self._event("response.created", response=response) + self._event(
            "response.in_progress", response=response
        )

    def _open(self, kind: str, prefix: str) -> tuple[_Open, list[bytes]]:
        frames = self._close_current()
        index = len(self._output)
        opened = _Open(kind, index, _item_id(prefix, self._head, index))
        self._output.append(None)
        return opened, frames

    def _text(self, kind: str, text: str) -> list[bytes]:
        """More text of the open item of ``kind``; the item is opened first when another is open."""
        frames: list[bytes] = []
        current = self._current
        if current is None or current.kind != kind:
            current, frames = self._open(kind, "rs" if kind == "reasoning" else "msg")
            if kind == "reasoning":
                item = _reasoning_item(current.item_id, None, "in_progress")
            else:
                item = _message_item(current.item_id, None, "in_progress")
            frames.append(self._event("response.output_item.added", output_index=current.index, item=item))
            if kind != "reasoning":
                part = _text_part("") if kind == "output_text" else _refusal_part("")
                frames.append(self._event("response.content_part.added", part=part, **self._at(current)))
            self._current = current
        current.text.append(text)
        extra: dict[str, Any] = {"logprobs": []} if kind == "output_text" else {}
        frames.append(self._event(_DELTA_EVENTS[kind], delta=text, **self._at(current), **extra))
        return frames

    def _at(self, item: _Open) -> dict[str, Any]:
        return {"item_id": item.item_id, "output_index": item.index, "content_index": 0}

    def _close_current(self, status: str = "completed") -> list[bytes]:
        """Close the open text, refusal or reasoning item as ``status`` (``incomplete``: the
        response failed before the item's end)."""
        current, self._current = self._current, None
        if current is None:
            return []
        text = "".join(current.text)
        at = self._at(current)
        frames: list[bytes] = []
        if current.kind == "reasoning":
            item = _reasoning_item(current.item_id, text, status)
            frames.append(self._event("response.reasoning_text.done", text=text, **at))
        else:
            part = _text_part(text) if current.kind == "output_text" else _refusal_part(text)
            if current.kind == "output_text":
                frames.append(self._event("response.output_text.done", text=text, logprobs=[], **at))
            else:
                frames.append(self._event("response.refusal.done", refusal=text, **at))
            frames.append(self._event("response.content_part.done", part=part, **at))
            item = _message_item(current.item_id, part, status)
        self._output[current.index] = item
        frames.append(self._event("response.output_item.done", output_index=current.index, item=item))
        return frames

    def _call(self, event: ToolCallDelta) -> list[bytes]:
        frames: list[bytes] = []
        call = self._calls.get(event.index)
        if call is None:
            frames = self._close_current()
            index = len(self._output)
            call = _Open("function_call", index, _item_id("fc", self._head, index))
            call.call_id = event.id or call.item_id
            call.name = event.name or ""
            self._calls[event.index] = call
            self._output.append(None)
            item = _call_item(call.item_id, call.call_id, call.name, "", "in_progress")
            frames.append(self._event("response.output_item.added", output_index=index, item=item))
        if event.arguments:
            call.text.append(event.arguments)
            frames.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=call.item_id,
                    output_index=call.index,
                    delta=event.arguments,
                )
            )
        return frames

    def _close_all(self, status: str = "completed") -> list[bytes]:
        frames = self._close_current(status)
        for call in self._calls.values():
            arguments = "".join(call.text)
            frames.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=call.item_id,
                    output_index=call.index,
                    name=call.name,
                    arguments=arguments,
                )
            )
            item = _call_item(call.item_id, call.call_id, call.name, arguments, status)
            self._output[call.index] = item
            frames.append(self._event("response.output_item.done", output_index=call.index, item=item))
        self._calls.clear()
        return frames

    def frames(self, event: Any) -> list[bytes]:
        """The frames one relay event makes (none after the response has ended)."""
        if self._ended:
            return []
        kind = event.__class__
        if kind is TextDelta:
            return self._text("output_text", event.text) if event.text else []
        if kind is ToolCallDelta:
            return self._call(event)
        if kind is ReasoningDelta:
            return self._text("reasoning", event.text) if event.text else []
        if kind is RefusalDelta:
            return self._text("refusal", event.text) if event.text else []
        if kind is Finish:
            if event.choice == 0:
                self._finish = event.reason
            return self._close_all()
        self._ended = True
        frames = self._close_all("incomplete" if kind is Failed else "completed")
        if kind is Settled:
            response = self._snapshot(
                "completed", usage=usage_json(event.usage, event.cost_pico), finish_reason=self._finish
            )
            done = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
            frames.append(self._event(done, response=response))
        elif kind is Failed:
            code = "rate_limit_exceeded" if event.status == 429 else "server_error"
            error = {"code": code, "message": event.message}
            if event.metadata is not None:
                error["metadata"] = event.metadata
            frames.append(self._event("response.failed", response=self._snapshot("failed", error=error)))
        else:
            raise TypeError(f"not a relay event: {event!r}")
        return frames


async def sse(request: ResponsesRequest, relay: Relay) -> AsyncIterator[bytes]:
    """The relay's events as the Responses API's server-sent events, then OpenRouter's
    ``data: [DONE]`` (which the openai and openrouter SDKs both take as the end)."""
    events = ResponseEvents(request, relay.head)
    yield events.start()
    async with contextlib.aclosing(relay.events) as stream:
        async for event in stream:
            frames = events.frames(event)
            if frames:
                yield b"".join(frames)
    yield SSE_DONE
