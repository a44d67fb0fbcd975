"""OpenAI's legacy ``/completions`` format: a prompt in, ``text_completion`` objects out.

The request is parsed once into a :class:`~genledger.core.prompt.PromptRequest`; the
answer is the gateway's typed :class:`~genledger.core.events.Answer` or relay, rendered here.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson

from genledger.api.inbound import load_object
from genledger.api.openai_chat import SSE_DONE, usage_json
from genledger.api.wire import MAX_TOKENS, ROUTING_FIELDS, parse_routing, passed_on, refuse_unknown
from genledger.core.events import Answer, Failed, Finish, Head, Relay, Settled, TextDelta
from genledger.core.prompt import PromptRequest
from genledger.core.usage import Usage
from genledger.errors import BadRequest

# Options passed on to the upstream, each with the JSON types it may take.
_PASSTHROUGH: dict[str, tuple[type, ...]] = {
    "temperature": (int, float),
    "top_p": (int, float),
    "n": (int,),
    "stop": (str, list),
    "presence_penalty": (int, float),
    "frequency_penalty": (int, float),
    "logit_bias": (dict,),
    "logprobs": (int,),
    "seed": (int,),
    "echo": (bool,),
    "best_of": (int,),
    "suffix": (str,),
}
_FIELDS = ROUTING_FIELDS | set(_PASSTHROUGH) | {"prompt", "stream", "stream_options", "max_tokens"}


def _prompt(value: Any) -> str:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, str):
        raise BadRequest(
            "'prompt' must be a string (batches and token arrays are not supported by this gateway)",
            metadata={"param": "prompt"},
        )
    return value


def _params(body: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, types in _PASSTHROUGH.items():
        value = body.get(name)
        if value is None:
            continue
        params[name] = passed_on(name, value, types)
    return params


def parse_prompt_request(raw: bytes, *, session_header: str | None = None) -> PromptRequest:
    """Validate a prompt completion body; 400 naming the offending field otherwise."""
    body = load_object(raw)
    refuse_unknown(body, frozenset(_FIELDS))
    routing = parse_routing(body, session_header=session_header)
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean", metadata={"param": "stream"})
    options = body.get("stream_options")
    if options is not None and (not isinstance(options, dict) or set(options) - {"include_usage"}):
        raise BadRequest(
            "'stream_options' may only set include_usage (the usage chunk is always sent)",
            metadata={"param": "stream_options"},
        )
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= MAX_TOKENS
    ):
        raise BadRequest(
            f"'max_tokens' must be an integer from 1 to {MAX_TOKENS}", metadata={"param": "max_tokens"}
        )
    return PromptRequest(
        model=routing.model,
        prompt=_prompt(body.get("prompt")),
        stream=stream,
        max_tokens=max_tokens,
        user=routing.user,
        params=_params(body),
        fallback_models=routing.fallback_models,
        provider=routing.provider,
        session_id=routing.session_id,
        metadata=routing.metadata,
    )


def text_completion_json(answer: Answer) -> dict[str, Any]:
    """The ``text_completion`` body: our generation id, slug and provider; usage with cost."""
    head, completion = answer.head, answer.completion
    body: dict[str, Any] = {
        "id": head.generation_id,
        "object": "text_completion",
        "created": completion.created or head.created,
        "model": head.model,
        "provider": head.provider_name,
        "system_fingerprint": completion.system_fingerprint,
        "choices": [
            {
                "index": choice.index,
                "text": choice.content or "",
                "logprobs": choice.logprobs,
                "finish_reason": choice.finish_reason,
                "native_finish_reason": choice.native_finish_reason,
            }
            for choice in completion.choices
        ],
    }
    if completion.usage is not None:
        body["usage"] = usage_json(completion.usage, answer.cost_pico)
    return body


def _frame(chunk: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


async def text_sse(relay: Relay) -> AsyncIterator[bytes]:
    """The relay as streamed ``text_completion`` chunks, the usage chunk, ``data: [DONE]``."""
    head: Head = relay.head
    base = {
        "id": head.generation_id,
        "object": "text_completion",
        "created": head.created,
        "model": head.model,
        "provider": head.provider_name,
    }

    def choice(index: int, text: str, logprobs: Any = None, finish: Finish | None = None) -> bytes:
        item = {
            "index": index,
            "text": text,
            "logprobs": logprobs,
            "finish_reason": finish.reason if finish else None,
            "native_finish_reason": finish.native if finish else None,
        }
        return _frame({**base, "choices": [item]})

    async with contextlib.aclosing(relay.events) as events:
        async for event in events:
            if isinstance(event, TextDelta):
                yield choice(event.choice, event.text, event.logprobs)
            elif isinstance(event, Finish):
                yield choice(event.choice, "", None, event)
            elif isinstance(event, Settled):
                yield _frame(
                    {**base, "choices": [], "usage": usage_json(event.usage or Usage(), event.cost_pico)}
                )
            elif isinstance(event, Failed):
                error: dict[str, Any] = {"code": event.status, "message": event.message}
                if event.metadata is not None:
                    error["metadata"] = event.metadata
                failed = {"index": 0, "text": "", "logprobs": None, "finish_reason": "error"}
                yield _frame(
                    {**base, "error": error, "choices": [{**failed, "native_finish_reason": "error"}]}
                )
            # Reasoning, refusal and tool-call deltas have no place in a text completion.
    yield SSE_DONE
