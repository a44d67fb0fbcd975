"""A fake Anthropic Messages API: ``POST /v1/messages`` (JSON and SSE), ``GET /v1/models``.

Deterministic replies:

* Requests need the ``x-api-key`` and ``anthropic-version`` headers (else 401 ``authentication_error``;
  note the real API answers 400 for a missing version) and ``model``, ``max_tokens``, ``messages``
  (else 400 ``invalid_request_error``).
* Token counts use 4 characters a token (at least 1) over the system prompt and message contents.
  When the system prompt is a list of blocks and one has ``cache_control``, the blocks up to the last
  such block are the *cached prefix*: ``cache_read_input_tokens`` = prefix chars // 4 (at least 1),
  ``cache_creation_input_tokens`` = 0, ``input_tokens`` = the remaining chars // 4 (at least 1).
  The ``cache_read`` / ``cache_creation`` behaviour params override both (with or without cache_control).
* The reply is ``n`` words ``"tok"``: ``n`` = the ``tokens`` param, else the server default (8).
  ``stop_reason``: ``"max_tokens"`` if ``max_tokens`` < ``n`` (then ``n`` = ``max_tokens``), else
  ``"stop_sequence"`` (with ``stop_sequence`` = the first one) if ``stop_sequences`` is non-empty,
  else ``"end_turn"``.  ``output_tokens`` = ``n``.
* With ``tools`` and a last user message containing "weather" (``tool_choice`` not ``none``): one
  ``tool_use`` block calling the first tool with ``{"city": "Paris"}``, ``stop_reason`` ``"tool_use"``,
  :data:`TOOL_USE_TOKENS` output tokens.
* Streams: ``message_start``, ``content_block_start``, ``ping``, ``content_block_delta`` (one
  ``text_delta`` per word, or two ``input_json_delta``), ``content_block_stop``, ``message_delta``
  (``stop_reason``, ``usage.output_tokens``), ``message_stop``.

Run: ``python -m tests.fakes.anthropic_upstream --port 9200``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final

from aiohttp import web

from tests.fakes.control import Behavior, dumps
from tests.fakes.runner import FakeServer, FakeServerInThread, run_cli, serve
from tests.fakes.server import (
    GARBAGE_BODY,
    WORD,
    FakeUpstream,
    StreamPlan,
    char_tokens,
    last_user_text,
    text_of,
    words,
)

TOOL_USE_TOKENS: Final = 12
TOOL_INPUT: Final[dict[str, Any]] = {"city": "Paris"}
TOOL_INPUT_JSON: Final = dumps(TOOL_INPUT).decode()
DEFAULT_PORT: Final = 9200

_ERROR_TYPES: Final[dict[int, str]] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
OVERLOADED_BODY: Final = dumps(
    {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
)
PING_EVENT: Final = b'event: ping\ndata: {"type":"ping"}\n\n'
MESSAGE_STOP_EVENT: Final = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
GARBAGE_EVENT: Final = b"event: content_block_delta\ndata: " + GARBAGE_BODY + b"\n\n"


def _event(name: str, obj: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + dumps(obj) + b"\n\n"


def _text_delta(index: int, text: str) -> bytes:
    return _event(
        "content_block_delta",
        {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}},
    )


def prompt_usage(body: dict[str, Any]) -> tuple[int, int]:
    """(input_tokens, cache_read_input_tokens) of a request, by the rules in the module docstring."""
    system = body.get("system")
    total = len(text_of(system))
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                total += len(text_of(message.get("content")))
    if isinstance(system, list):
        last = max(
            (i for i, b in enumerate(system) if isinstance(b, dict) and b.get("cache_control")), default=-1
        )
        if last >= 0:
            prefix = len(text_of(system[: last + 1]))
            return char_tokens(total - prefix), char_tokens(prefix)
    return char_tokens(total), 0


@dataclass(slots=True)
class _Reply:
    model: str
    n: int
    stop_reason: str
    stop_sequence: str | None
    tool_name: str | None
    usage: dict[str, int]


class FakeAnthropicUpstream(FakeUpstream):
    """The Anthropic Messages wire format; see the module docstring for the deterministic rules."""

    kind = "anthropic"
    generation_path = "/v1/messages"
    base_path = ""  # the Anthropic SDK's base_url is the bare root
    overloaded_status = 529
    default_models = ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1")

    @cached_property
    def _models_body(self) -> bytes:
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
            for m in self.models
        ]
        first, last = (self.models[0], self.models[-1]) if self.models else (None, None)
        return dumps({"data": data, "has_more": False, "first_id": first, "last_id": last})

    # -- requests

    def check(self, request: web.Request, body: dict[str, Any]) -> web.Response | None:
        headers = request.headers
        if not headers.get("x-api-key"):
            return self.error_response(401, message="x-api-key header is required")
        if not headers.get("anthropic-version"):
            return self.error_response(401, message="anthropic-version header is required")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return self.error_response(400, message="model: Field required")
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            return self.error_response(400, message="max_tokens: Field required (an integer >= 1)")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return self.error_response(400, message="messages: at least one message is required")
        return None

    def _reply(self, body: dict[str, Any], behavior: Behavior) -> _Reply:
        input_tokens, cache_read = prompt_usage(body)
        cache_read = behavior.get_int("cache_read", cache_read) or 0
        cache_creation = behavior.get_int("cache_creation", 0) or 0
        tool_name = _tool_to_use(body)
        stop_sequence = None
        if tool_name is not None:
            n, stop_reason, output = 0, "tool_use", TOOL_USE_TOKENS
        else:
            natural = behavior.get_int("tokens")
            n = self.completion_tokens if natural is None else natural
            stop_sequences = body.get("stop_sequences")
            if body["max_tokens"] < n:
                n, stop_reason = body["max_tokens"], "max_tokens"
            elif isinstance(stop_sequences, list) and stop_sequences and isinstance(stop_sequences[0], str):
                stop_reason, stop_sequence = "stop_sequence", stop_sequences[0]
            else:
                stop_reason = "end_turn"
            output = n
        usage = {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": cache_creation,
            "cache_read_input_tokens": cache_read,
            "output_tokens": output,
        }
        return _Reply(body["model"], n, stop_reason, stop_sequence, tool_name, usage)

    # -- responses

    def render_json(self, body: dict[str, Any], behavior: Behavior) -> bytes:
        reply = self._reply(body, behavior)
        number = self.next_id()
        block: dict[str, Any]
        if reply.tool_name is not None:
            block = {
                "type": "tool_use",
                "id": f"toolu_fake{number}",
                "name": reply.tool_name,
                "input": TOOL_INPUT,
            }
        else:
            block = {"type": "text", "text": words(reply.n)}
        return dumps(
            {
                "id": f"msg_fake{number}",
                "type": "message",
                "role": "assistant",
                "model": reply.model,
                "content": [block],
                "stop_reason": reply.stop_reason,
                "stop_sequence": reply.stop_sequence,
                "usage": reply.usage,
            }
        )

    def render_stream(self, body: dict[str, Any], behavior: Behavior) -> StreamPlan:
        reply = self._reply(body, behavior)
        number = self.next_id()
        message: dict[str, Any] = {
            "id": f"msg_fake{number}",
            "type": "message",
            "role": "assistant",
            "model": reply.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**reply.usage, "output_tokens": 1},
        }
        block: dict[str, Any]
        if reply.tool_name is not None:
            block = {"type": "tool_use", "id": f"toolu_fake{number}", "name": reply.tool_name, "input": {}}
            half = len(TOOL_INPUT_JSON) // 2
            content = [
                _event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    },
                )
                for piece in (TOOL_INPUT_JSON[:half], TOOL_INPUT_JSON[half:])
            ]
        else:
            block = {"type": "text", "text": ""}
            content = [_text_delta(0, WORD)] if reply.n else []
            content.extend([_text_delta(0, " " + WORD)] * max(0, reply.n - 1))
        head = [
            _event("message_start", {"type": "message_start", "message": message}),
            _event(
                "content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}
            ),
            PING_EVENT,
        ]
        delta = {"stop_reason": reply.stop_reason, "stop_sequence": reply.stop_sequence}
        tail = [
            _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
            _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": delta,
                    "usage": {"output_tokens": reply.usage["output_tokens"]},
                },
            ),
            MESSAGE_STOP_EVENT,
        ]
        return StreamPlan(head, content, tail)

    def error_body(self, status: int, message: str, error_type: str | None, code: str | None) -> bytes:
        kind = error_type or _ERROR_TYPES.get(status, "api_error")
        return dumps({"type": "error", "error": {"type": kind, "message": message}})

    def overloaded_body(self) -> bytes:
        return OVERLOADED_BODY

    def stream_error_event(self, behavior: Behavior) -> bytes:
        error = {
            "type": behavior.get_str("error_type") or "overloaded_error",
            "message": behavior.get_str("message") or "Overloaded",
        }
        return _event("error", {"type": "error", "error": error})

    def garbage_event(self) -> bytes:
        return GARBAGE_EVENT

    def models_body(self) -> bytes:
        return self._models_body


def _tool_to_use(body: dict[str, Any]) -> str | None:
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if (
        not isinstance(tools, list)
        or not tools
        or (isinstance(choice, dict) and choice.get("type") == "none")
    ):
        return None
    if "weather" not in last_user_text(body.get("messages")).lower():
        return None
    first = tools[0]
    name = first.get("name") if isinstance(first, dict) else None
    return name if isinstance(name, str) else "get_weather"


def run_fake_anthropic(
    port: int = 0,
    host: str = "127.0.0.1",
    *,
    completion_tokens: int = 8,
    delay_ms: float = 0.0,
    models: Sequence[str] | None = None,
) -> AbstractAsyncContextManager[FakeServer]:
    """``async with run_fake_anthropic() as fake:`` -> :class:`tests.fakes.runner.FakeServer` on this loop."""
    upstream = FakeAnthropicUpstream(completion_tokens=completion_tokens, delay_ms=delay_ms, models=models)
    return serve(upstream, host, port)


class FakeAnthropicInThread(FakeServerInThread):
    """``with FakeAnthropicInThread() as fake:`` -> the Anthropic fake on its own loop in a daemon thread."""

    upstream_class = FakeAnthropicUpstream


def main(argv: Sequence[str] | None = None) -> None:
    run_cli(FakeAnthropicUpstream, argv, DEFAULT_PORT)


if __name__ == "__main__":
    main()
