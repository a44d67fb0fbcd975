"""A fake OpenAI-compatible upstream: ``POST /v1/chat/completions`` (JSON and SSE), ``POST /v1/embeddings``,
``POST /v1/completions`` (legacy prompt completions, JSON and SSE), ``GET /v1/models``.

Deterministic replies:

* ``prompt_tokens`` = characters of all message contents // 4, at least 1 (:func:`prompt_tokens_of`).
* The reply is ``n`` words ``"tok"`` joined by spaces: ``n`` = ``max_completion_tokens``/``max_tokens``
  when given (``finish_reason`` ``"length"``), else the server default 8 (``"stop"``).  The ``tokens``
  behaviour param sets the natural length instead (``"length"`` only if ``max_tokens`` cuts it).
* ``completion_tokens`` = ``n`` + the ``reasoning_tokens`` param (default 0); ``cached_tokens`` param
  (default 0, capped at ``prompt_tokens``) goes to ``usage.prompt_tokens_details.cached_tokens``.
* With ``tools`` and a last user message containing "weather" (and ``tool_choice`` not "none"): a
  ``tool_calls`` reply calling the first tool with ``{"city":"Paris"}``, ``finish_reason`` ``"tool_calls"``,
  :data:`TOOL_CALL_TOKENS` completion tokens.
* Streams: a role chunk, one chunk per word, a chunk with ``finish_reason``, then with
  ``stream_options.include_usage`` a ``choices: []`` usage chunk (other chunks carry ``"usage": null``),
  then ``data: [DONE]``.

* Embeddings: one vector per input of ``dimensions`` (default :data:`EMBEDDING_DIMENSIONS`) floats
  from :func:`fake_vector`; ``prompt_tokens`` = characters of all inputs // 4 (at least 1 each),
  a token array counting its length.
* Prompt completions: the same ``n`` words as chat, as ``choices[].text``; ``prompt_tokens`` from the
  prompt's characters; streams send one chunk per word, a finish chunk, the usage chunk, ``[DONE]``.

Every behaviour (status, stall, die mid-stream, ...) applies to all three routes alike.

Run: ``python -m tests.fakes.openai_upstream --port 9100``.
"""

from __future__ import annotations

import hashlib
import time
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

TOOL_CALL_TOKENS: Final = 12
TOOL_ARGUMENTS: Final = dumps({"city": "Paris"}).decode()
DONE_EVENT: Final = b"data: [DONE]\n\n"
GARBAGE_EVENT: Final = b"data: " + GARBAGE_BODY + b"\n\n"
DEFAULT_PORT: Final = 9100
EMBEDDING_DIMENSIONS: Final = 8
EMBEDDINGS_PATH: Final = "/v1/embeddings"
COMPLETIONS_PATH: Final = "/v1/completions"


def fake_vector(text: str, dimensions: int) -> list[float]:
    """The fake's embedding of ``text``: deterministic, each float in [-1, 1)."""
    digest = hashlib.sha256(text.encode()).digest()
    return [(digest[i % 32] - 128) / 128 for i in range(dimensions)]


def embedding_tokens(inputs: Any) -> int:
    items = inputs if isinstance(inputs, list) and not all(isinstance(t, int) for t in inputs) else [inputs]
    return sum(len(item) if isinstance(item, list) else char_tokens(len(str(item))) for item in items)


_ERROR_TYPES: Final[dict[int, tuple[str, str | None]]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    529: ("overloaded_error", "overloaded"),
}
OVERLOADED_BODY: Final = dumps(
    {
        "error": {
            "message": "The server is overloaded, please try again later.",
            "type": "server_error",
            "param": None,
            "code": "overloaded",
        }
    }
)


def prompt_tokens_of(messages: Any) -> int:
    """Characters of all message contents // 4, at least 1."""
    chars = 0
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                chars += len(text_of(message.get("content")))
    return char_tokens(chars)


def _sse(obj: Any) -> bytes:
    return b"data: " + dumps(obj) + b"\n\n"


@dataclass(slots=True)
class _Reply:
    model: str
    n: int  # words
    finish_reason: str
    tool_name: str | None
    usage: dict[str, Any] | None  # None: the reply reports no usage


def _usage_field(usage: dict[str, Any] | None) -> dict[str, Any]:
    """A prompt completion's ``usage`` member (its three counts), or nothing."""
    if usage is None:
        return {}
    return {"usage": {key: usage[key] for key in ("prompt_tokens", "completion_tokens", "total_tokens")}}


class FakeOpenAIUpstream(FakeUpstream):
    """The OpenAI wire format; see the module docstring for the deterministic rules."""

    kind = "openai"
    generation_path = "/v1/chat/completions"
    base_path = "/v1"
    overloaded_status = 503
    default_models = ("gpt-4o-mini", "gpt-4o", "fake-model")

    @cached_property
    def _models_body(self) -> bytes:
        created = int(time.time())
        data = [{"id": m, "object": "model", "created": created, "owned_by": "fake"} for m in self.models]
        return dumps({"object": "list", "data": data})

    def make_app(self) -> web.Application:
        app = super().make_app()
        app.router.add_post(EMBEDDINGS_PATH, self.handle_generation)
        app.router.add_post(COMPLETIONS_PATH, self.handle_generation)
        return app

    # -- requests

    def check(self, request: web.Request, body: dict[str, Any]) -> web.Response | None:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return self.error_response(400, message="you must provide a model parameter")
        # The renderers tell the routes apart by these fields, which only their own route accepts.
        if request.path == EMBEDDINGS_PATH:
            if not body.get("input") or "messages" in body or "prompt" in body:
                return self.error_response(400, message="'input' is required")
            if body.get("stream"):
                return self.error_response(400, message="embeddings cannot be streamed")
            return None
        if request.path == COMPLETIONS_PATH:
            if not isinstance(body.get("prompt"), str | list) or "messages" in body or "input" in body:
                return self.error_response(400, message="'prompt' is required")
            return None
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return self.error_response(400, message="'messages' must be a non-empty array")
        return None

    def _reply(self, body: dict[str, Any], behavior: Behavior) -> _Reply:
        if "prompt" in body:
            prompt = body["prompt"]
            prompt_tokens = char_tokens(len(prompt if isinstance(prompt, str) else dumps(prompt)))
        else:
            prompt_tokens = prompt_tokens_of(body["messages"])
        tool_name = _tool_to_call(body)
        if tool_name is not None:
            n, finish, completion = 0, "tool_calls", TOOL_CALL_TOKENS
        else:
            limit = body.get("max_completion_tokens", body.get("max_tokens"))
            if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
                limit = None
            natural = behavior.get_int("tokens")
            if natural is None:
                natural = limit if limit is not None else self.completion_tokens
            if limit is not None and limit <= natural:
                n, finish = limit, "length"
            else:
                n, finish = natural, "stop"
            completion = n
        reasoning = behavior.get_int("reasoning_tokens", 0) or 0
        cached = min(behavior.get_int("cached_tokens", 0) or 0, prompt_tokens)
        completion += reasoning
        prompt_tokens = behavior.get_int("prompt_tokens", prompt_tokens) or prompt_tokens
        if behavior.get_str("usage") == "none":
            return _Reply(body["model"], n, finish, tool_name, None)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        return _Reply(body["model"], n, finish, tool_name, usage)

    # -- responses

    def _embeddings_json(self, body: dict[str, Any]) -> bytes:
        inputs = body["input"]
        items = (
            inputs if isinstance(inputs, list) and not all(isinstance(t, int) for t in inputs) else [inputs]
        )
        dimensions = body.get("dimensions") or EMBEDDING_DIMENSIONS
        tokens = embedding_tokens(inputs)
        data = [
            {"object": "embedding", "index": i, "embedding": fake_vector(dumps(item).decode(), dimensions)}
            for i, item in enumerate(items)
        ]
        return dumps(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    def _text_json(self, body: dict[str, Any], behavior: Behavior) -> bytes:
        reply = self._reply(body, behavior)
        choice = {
            "text": " " + words(reply.n),
            "index": 0,
            "logprobs": None,
            "finish_reason": reply.finish_reason,
        }
        return dumps(
            {
                "id": f"cmpl-fake{self.next_id()}",
                "object": "text_completion",
                "created": int(time.time()),
                "model": reply.model,
                "system_fingerprint": "fp_fake",
                "choices": [choice],
                **_usage_field(reply.usage),
            }
        )

    def _text_stream(self, body: dict[str, Any], behavior: Behavior) -> StreamPlan:
        reply = self._reply(body, behavior)
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        base = {
            "id": f"cmpl-fake{self.next_id()}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": reply.model,
        }

        def chunk(text: str, finish_reason: str | None = None) -> bytes:
            choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}
            return _sse({**base, "choices": [choice]})

        tail = [chunk("", reply.finish_reason)]
        if include_usage and reply.usage is not None:
            tail.append(_sse({**base, "choices": [], **_usage_field(reply.usage)}))
        if behavior.get_str("done") != "none":
            tail.append(DONE_EVENT)
        return StreamPlan([], [chunk(" " + WORD)] * reply.n, tail)

    def render_json(self, body: dict[str, Any], behavior: Behavior) -> bytes:
        if "input" in body:
            return self._embeddings_json(body)
        if "prompt" in body:
            return self._text_json(body, behavior)
        reply = self._reply(body, behavior)
        number = self.next_id()
        message: dict[str, Any]
        if reply.tool_name is not None:
            call = {
                "id": f"call_fake{number}",
                "type": "function",
                "function": {"name": reply.tool_name, "arguments": TOOL_ARGUMENTS},
            }
            message = {"role": "assistant", "content": None, "tool_calls": [call], "refusal": None}
        else:
            message = {"role": "assistant", "content": words(reply.n), "refusal": None}
        return dumps(
            {
                "id": f"chatcmpl-fake{number}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": reply.model,
                "system_fingerprint": "fp_fake",
                "choices": [
                    {"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}
                ],
                **({} if reply.usage is None else {"usage": reply.usage}),
            }
        )

    def render_stream(self, body: dict[str, Any], behavior: Behavior) -> StreamPlan:
        if "prompt" in body:
            return self._text_stream(body, behavior)
        reply = self._reply(body, behavior)
        number = self.next_id()
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        base: dict[str, Any] = {
            "id": f"chatcmpl-fake{number}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": reply.model,
            "system_fingerprint": "fp_fake",
        }
        if include_usage:
            base["usage"] = None

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return _sse({**base, "choices": [choice]})

        content: list[bytes]
        if reply.tool_name is not None:
            call = {
                "index": 0,
                "id": f"call_fake{number}",
                "type": "function",
                "function": {"name": reply.tool_name, "arguments": ""},
            }
            head = [chunk({"role": "assistant", "content": None, "tool_calls": [call], "refusal": None})]
            half = len(TOOL_ARGUMENTS) // 2
            content = [
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                for piece in (TOOL_ARGUMENTS[:half], TOOL_ARGUMENTS[half:])
            ]
        else:
            head = [chunk({"role": "assistant", "content": "", "refusal": None})]
            content = []
            if reply.n:
                content.append(chunk({"content": WORD}))
                content.extend([chunk({"content": " " + WORD})] * (reply.n - 1))
        tail = [chunk({}, reply.finish_reason)]
        if include_usage and reply.usage is not None:
            tail.append(_sse({**base, "choices": [], "usage": reply.usage}))
        if behavior.get_str("done") != "none":
            tail.append(DONE_EVENT)
        return StreamPlan(head, content, tail)

    def error_body(self, status: int, message: str, error_type: str | None, code: str | None) -> bytes:
        default_type, default_code = _ERROR_TYPES.get(status, ("server_error", None))
        return dumps(
            {
                "error": {
                    "message": message,
                    "type": error_type or default_type,
                    "param": None,
                    "code": code or default_code,
                }
            }
        )

    def overloaded_body(self) -> bytes:
        return OVERLOADED_BODY

    def stream_error_event(self, behavior: Behavior) -> bytes:
        message = behavior.get_str("message") or "The server had an error while processing your request."
        code: str | int | None = behavior.get_str("code")
        if code is not None and code.isdigit():
            code = int(code)  # OpenRouter puts the HTTP status, a number, in an in-stream error's code
        error = {
            "message": message,
            "type": behavior.get_str("error_type") or "server_error",
            "param": None,
            "code": code,
        }
        return _sse({"error": error})

    def garbage_event(self) -> bytes:
        return GARBAGE_EVENT

    def models_body(self) -> bytes:
        return self._models_body


def _tool_to_call(body: dict[str, Any]) -> str | None:
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools or body.get("tool_choice") == "none":
        return None
    if "weather" not in last_user_text(body.get("messages")).lower():
        return None
    first = tools[0]
    function = first.get("function") if isinstance(first, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    return name if isinstance(name, str) else "get_weather"


def run_fake_openai(
    port: int = 0,
    host: str = "127.0.0.1",
    *,
    completion_tokens: int = 8,
    delay_ms: float = 0.0,
    models: Sequence[str] | None = None,
) -> AbstractAsyncContextManager[FakeServer]:
    """``async with run_fake_openai() as fake:`` -> :class:`tests.fakes.runner.FakeServer` on this loop."""
    upstream = FakeOpenAIUpstream(completion_tokens=completion_tokens, delay_ms=delay_ms, models=models)
    return serve(upstream, host, port)


class FakeOpenAIInThread(FakeServerInThread):
    """``with FakeOpenAIInThread() as fake:`` -> the OpenAI fake on its own loop in a daemon thread."""

    upstream_class = FakeOpenAIUpstream


def main(argv: Sequence[str] | None = None) -> None:
    run_cli(FakeOpenAIUpstream, argv, DEFAULT_PORT)


if __name__ == "__main__":
    main()
