"""Anthropic's Messages API (``POST /v1/messages``), over the shared pooled HTTP client.

Requests arrive in OpenAI's chat shape and answers leave in it; the translation happens
here, once, in three pure pieces that tests use on their own:

* :func:`messages_body`: an :class:`~genledger.providers.base.UpstreamCall` -> the Messages
  request (system prompt hoisted, roles merged to alternate, tools and tool results
  rewritten as blocks, ``max_tokens`` always set).
* :func:`completion_from_message`: a Message -> a :class:`Completion`.
* :class:`StreamTranslator`: stream events -> :mod:`genledger.core.events`.

Each takes a failure factory (as :mod:`genledger.providers.http` does) and raises the
``UpstreamFailure`` it builds: ``UNSUPPORTED`` for a request the Messages API cannot
express (never sent: the next endpoint may serve it), ``INVALID_RESPONSE`` for an answer
without the documented shape, and the kind
:func:`~genledger.core.failures.stream_error_kind` names for an ``error`` event mid-stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from genledger.config import ProviderConfig
from genledger.core.chat import Choice, Completion, ToolCall, normalize_finish_reason
from genledger.core.events import (
    Finish,
    Identified,
    ProviderEvent,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    UsageReport,
)
from genledger.core.failures import FailureKind, UpstreamFailure, stream_error_kind
from genledger.core.usage import Usage, believable
from genledger.providers.base import UpstreamCall
from genledger.providers.http import FailureFactory, HttpProvider

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # the Messages API requires max_tokens; OpenAI callers may omit it
MESSAGES_PATH = "/v1/messages"

Unsupported = Callable[[str], UpstreamFailure]
"""Builds the UNSUPPORTED failure for a request the Messages API cannot express."""

_SYSTEM_ROLES = frozenset({"system", "developer"})
_TOOL_CHOICES = {"auto": {"type": "auto"}, "none": {"type": "none"}, "required": {"type": "any"}}
_EMPTY_SCHEMA = {"type": "object", "properties": {}}
_ERROR_DETAIL_LIMIT = 300  # characters of Anthropic's error message repeated in ours


def messages_url(base_url: str) -> str:
    """``{root}/v1/messages`` for a base URL given with or without its ``/v1``."""
    return base_url.rstrip("/").removesuffix("/v1") + MESSAGES_PATH


# ---------------------------------------------------------------------------------------- request


def messages_body(call: UpstreamCall, failure: FailureFactory, *, stream: bool = False) -> dict[str, Any]:
    """The Messages API request for an OpenAI-shaped chat request."""
    request = call.request
    params = request.params

    def unsupported(message: str) -> UpstreamFailure:
        return failure(FailureKind.UNSUPPORTED, f"not expressible in Anthropic's Messages API: {message}")

    if isinstance(params.get("n"), int) and params["n"] > 1:
        raise unsupported("'n' greater than 1 is not supported")
    system, messages = _conversation(request.messages, unsupported)
    body: dict[str, Any] = {
        "model": call.upstream_model,
        "max_tokens": request.max_tokens or call.max_output_tokens or DEFAULT_MAX_TOKENS,
        "messages": messages,
    }
    if system is not None:
        body["system"] = system
    for name in ("temperature", "top_p", "top_k"):
        if name in params:
            body[name] = params[name]
    stop = params.get("stop")
    stop_sequences = [stop] if isinstance(stop, str) else stop
    if stop_sequences:
        if not all(isinstance(s, str) for s in stop_sequences):
            raise unsupported("'stop' must be a string or an array of strings")
        body["stop_sequences"] = stop_sequences
    tools = params.get("tools")
    if tools:
        body["tools"] = [_tool(tool, unsupported) for tool in tools]
        choice = _tool_choice(params.get("tool_choice"), params.get("parallel_tool_calls"), unsupported)
        if choice is not None:
            body["tool_choice"] = choice
    if request.user:
        body["metadata"] = {"user_id": request.user}
    if stream:
        body["stream"] = True
    return body


def _conversation(
    messages: Iterable[dict[str, Any]], unsupported: Unsupported
) -> tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """The top-level ``system`` and the alternating user/assistant ``messages``."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        role = message.get("role")
        where = f"messages[{index}]"
        if role in _SYSTEM_ROLES:
            system.extend(_text_blocks(message.get("content"), where, unsupported))
            continue
        if role == "user":
            blocks = _content_blocks(message.get("content"), where, unsupported)
        elif role == "assistant":
            blocks = _assistant_blocks(message, where, unsupported)
        elif role == "tool":
            role, blocks = "user", [_tool_result(message, where, unsupported)]
        else:
            raise unsupported(f"{where}: role {role!r} is not supported; use 'tools' and 'tool' messages")
        if not blocks:
            continue  # the Messages API refuses empty turns
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)  # it also refuses two turns of one role in a row
        else:
            turns.append({"role": role, "content": blocks})
    return _system(system), [_compact(turn) for turn in turns]


def _system(blocks: list[dict[str, Any]]) -> str | list[dict[str, Any]] | None:
    if not blocks:
        return None
    if any("cache_control" in block for block in blocks):
        return blocks  # cache breakpoints live on blocks
    return "\n\n".join(block["text"] for block in blocks)


def _compact(turn: dict[str, Any]) -> dict[str, Any]:
    # Tool results must open a user turn; after a merge they may not.
    blocks = sorted(turn["content"], key=lambda block: block["type"] != "tool_result")
    if len(blocks) == 1 and blocks[0].keys() == {"type", "text"}:
        return {"role": turn["role"], "content": blocks[0]["text"]}
    return {"role": turn["role"], "content": blocks}


def _text_block(part: dict[str, Any], where: str, unsupported: Unsupported) -> dict[str, Any] | None:
    text = part.get("text")
    if not isinstance(text, str):
        raise unsupported(f"{where}.text must be a string")
    if not text:
        return None  # the Messages API refuses empty text blocks
    block: dict[str, Any] = {"type": "text", "text": text}
    if "cache_control" in part:
        block["cache_control"] = part["cache_control"]
    return block


def _text_blocks(content: Any, where: str, unsupported: Unsupported) -> list[dict[str, Any]]:
    blocks = _content_blocks(content, where, unsupported)
    if any(block["type"] != "text" for block in blocks):
        raise unsupported(f"{where}: only text parts are allowed here")
    return blocks


def _content_blocks(content: Any, where: str, unsupported: Unsupported) -> list[dict[str, Any]]:
    """Text and image blocks of a string or a list of OpenAI content parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for index, part in enumerate(content):
        at = f"{where}.content[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            block = _text_block(part, at, unsupported)
        elif kind == "image_url":
            block = _image_block(part, at, unsupported)
        else:
            raise unsupported(f"{at}: content part type {kind!r} is not supported")
        if block is not None:
            blocks.append(block)
    return blocks


def _image_block(part: dict[str, Any], where: str, unsupported: Unsupported) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise unsupported(f"{where}.image_url.url must be a string")
    source: dict[str, Any]
    if url.startswith("data:"):
        header, comma, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not comma or encoding != "base64" or not media_type:
            raise unsupported(f"{where}: an image data URL must be data:<media type>;base64,<data>")
        source = {"type": "base64", "media_type": media_type, "data": data}
    else:
        source = {"type": "url", "url": url}
    block: dict[str, Any] = {"type": "image", "source": source}
    if "cache_control" in part:
        block["cache_control"] = part["cache_control"]
    return block


def _assistant_blocks(message: dict[str, Any], where: str, unsupported: Unsupported) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, list):  # refusal parts are OpenAI's own; they carry no text to resend
        content = [p for p in content if not (isinstance(p, dict) and p.get("type") == "refusal")]
    blocks = _text_blocks(content, where, unsupported)
    tool_calls = message.get("tool_calls") or []
    if not isinstance(tool_calls, list):
        raise unsupported(f"{where}.tool_calls must be an array")
    for index, tool_call in enumerate(tool_calls):
        at = f"{where}.tool_calls[{index}]"
        function = tool_call.get("function") if isinstance(tool_call, dict) else None
        if not isinstance(function, dict) or not isinstance(tool_call.get("id"), str):
            raise unsupported(f"{at} must have an 'id' and a 'function'")
        blocks.append(
            {
                "type": "tool_use",
                "id": tool_call["id"],
                "name": function.get("name"),
                "input": _arguments(function.get("arguments"), at, unsupported),
            }
        )
    return blocks


def _arguments(arguments: Any, where: str, unsupported: Unsupported) -> dict[str, Any]:
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, str):
        try:
            arguments = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            raise unsupported(f"{where}.function.arguments is not valid JSON") from None
    if not isinstance(arguments, dict):
        raise unsupported(f"{where}.function.arguments must be a JSON object")
    return arguments


def _tool_result(message: dict[str, Any], where: str, unsupported: Unsupported) -> dict[str, Any]:
    tool_call_id = message.get("tool_call_id")
    if not isinstance(tool_call_id, str) or not tool_call_id:
        raise unsupported(f"{where}.tool_call_id is required on a tool message")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_call_id}
    content = message.get("content")
    if isinstance(content, str):
        if content:
            block["content"] = content
    else:
        blocks = _content_blocks(content, where, unsupported)
        if blocks:
            block["content"] = blocks
    return block


def _tool(tool: Any, unsupported: Unsupported) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise unsupported("only tools of type 'function' with a 'name' are supported")
    translated: dict[str, Any] = {
        "name": function["name"],
        "input_schema": function.get("parameters") or _EMPTY_SCHEMA,
    }
    if function.get("description"):
        translated["description"] = function["description"]
    if "cache_control" in tool:
        translated["cache_control"] = tool["cache_control"]
    return translated


def _tool_choice(choice: Any, parallel: Any, unsupported: Unsupported) -> dict[str, Any] | None:
    translated: dict[str, Any] | None
    if choice is None:
        translated = None
    elif isinstance(choice, str) and choice in _TOOL_CHOICES:
        translated = dict(_TOOL_CHOICES[choice])
    elif (
        isinstance(choice, dict)
        and choice.get("type") == "function"
        and isinstance(choice.get("function"), dict)
        and isinstance(choice["function"].get("name"), str)
    ):
        translated = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise unsupported(f"tool_choice {choice!r} is not supported")
    if parallel is False:
        translated = translated or {"type": "auto"}
        if translated["type"] != "none":
            translated["disable_parallel_tool_use"] = True
    return translated


# --------------------------------------------------------------------------------------- response


def usage_from_anthropic(usage: Any) -> Usage | None:
    """Anthropic's usage in our terms: prompt tokens include cache reads and writes (OpenAI's
    way); None when it counts neither the prompt nor the completion, as
    :func:`~genledger.core.usage.from_openai` (no report: the gateway estimates, and it
    estimates the prompt of one that counts only the completion)."""
    if not isinstance(usage, dict):
        return None

    def count(key: str) -> int:
        value = usage.get(key)
        return max(value, 0) if isinstance(value, int) and not isinstance(value, bool) else 0

    cache_read = count("cache_read_input_tokens")
    cache_write = count("cache_creation_input_tokens")
    prompt, completion = count("input_tokens") + cache_read + cache_write, count("output_tokens")
    if not (prompt or completion):
        return None
    return believable(Usage(prompt, completion, cached_tokens=cache_read, cache_write_tokens=cache_write))


def completion_from_message(raw: bytes, failure: FailureFactory, *, created: int | None = None) -> Completion:
    """A non-streamed Message (its JSON bytes) as a :class:`Completion`."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        message = None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(message, dict) or not isinstance(content, list):
        raise failure(FailureKind.INVALID_RESPONSE, "Anthropic sent an invalid message", raw=raw)
    texts: list[str] = []
    thinking: list[str] = []
    tool_calls: list[ToolCall] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            thinking.append(block["thinking"])
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            tool_calls.append(ToolCall(_str(block.get("id")), _str(block.get("name")), arguments))
        # redacted thinking and server-tool blocks have no place in a chat completion
    native = _str(message.get("stop_reason"))
    choice = Choice(
        content="".join(texts) if texts else None,
        tool_calls=tuple(tool_calls),
        reasoning="".join(thinking) if thinking else None,
        finish_reason=normalize_finish_reason(native),
        native_finish_reason=native,
        stop_sequence=_str(message.get("stop_sequence")),
    )
    return Completion(
        choices=(choice,),
        usage=usage_from_anthropic(message.get("usage")),
        upstream_id=_str(message.get("id")),
        created=created if created is not None else int(time.time()),
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class StreamTranslator:
    """Anthropic stream events in, :mod:`genledger.core.events` out.

    :meth:`feed` takes one parsed event and returns the events it makes (often none): the
    id and prompt usage with ``message_start``, text, thinking and tool-call deltas from the
    content blocks, the output tokens and stop reason with ``message_delta``.
    :attr:`finished` turns true at ``message_stop``; a stream that ends before it is broken.
    """

    unfinished = "before message_stop"

    def __init__(self, failure: FailureFactory) -> None:
        self.finished = False
        self.complete = False  # message_stop is both its end and its end marker
        self._failure = failure
        self._usage: dict[str, Any] = {}
        self._tool_index: dict[Any, int] = {}  # content block index -> OpenAI tool call index

    def feed_data(self, data: bytes) -> list[ProviderEvent]:
        """The events of one ``data:`` payload (a JSON event)."""
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise self._failure(
                FailureKind.INVALID_RESPONSE, "Anthropic sent an invalid event", raw=data
            ) from None
        return self.feed(event)

    def feed(self, event: Any) -> list[ProviderEvent]:
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == "message_start":
            return self._message_start(event.get("message"))
        if kind == "content_block_start":
            return self._block_start(event.get("index"), event.get("content_block"))
        if kind == "content_block_delta":
            return self._block_delta(event.get("index"), event.get("delta"))
        if kind == "message_delta":
            return self._message_delta(event.get("delta"), event.get("usage"))
        if kind == "message_stop":
            self.finished = True
        elif kind == "error":
            error = event.get("error")
            error_type = error.get("type") if isinstance(error, dict) else None
            message = error.get("message") if isinstance(error, dict) else None
            raise self._failure(
                stream_error_kind(error),
                f"Anthropic stream error: {error_type}: {message}",
                raw=error,
            )
        elif kind is None:
            raise self._failure(FailureKind.INVALID_RESPONSE, "Anthropic sent an invalid event", raw=event)
        # ping, content_block_stop and event types newer than this adapter carry nothing to relay
        return []

    def _add_usage(self, usage: Any, events: list[ProviderEvent]) -> None:
        if isinstance(usage, dict):
            self._usage.update((k, v) for k, v in usage.items() if isinstance(v, int))
            total = usage_from_anthropic(self._usage)
            if total is not None:
                events.append(UsageReport(total))

    def _message_start(self, message: Any) -> list[ProviderEvent]:
        if not isinstance(message, dict):
            raise self._failure(FailureKind.INVALID_RESPONSE, "message_start without a message", raw=message)
        events: list[ProviderEvent] = []
        if isinstance(message.get("id"), str):
            events.append(Identified(message["id"]))
        self._add_usage(message.get("usage"), events)
        events.append(TextDelta(""))  # the assistant's turn begins
        return events

    def _block_start(self, index: Any, block: Any) -> list[ProviderEvent]:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and block.get("text"):
            return [TextDelta(block["text"])]
        if kind == "tool_use":
            position = self._tool_index[index] = len(self._tool_index)
            arguments = orjson.dumps(block["input"]).decode() if block.get("input") else ""
            return [ToolCallDelta(position, _str(block.get("id")), _str(block.get("name")), arguments)]
        return []

    def _block_delta(self, index: Any, delta: Any) -> list[ProviderEvent]:
        kind = delta.get("type") if isinstance(delta, dict) else None
        if kind == "text_delta" and delta.get("text"):
            return [TextDelta(delta["text"])]
        if kind == "thinking_delta" and delta.get("thinking"):
            return [ReasoningDelta(delta["thinking"])]
        if kind == "input_json_delta" and delta.get("partial_json") and index in self._tool_index:
            return [ToolCallDelta(self._tool_index[index], arguments=delta["partial_json"])]
        return []  # signatures and citations have no place in a chat completion

    def _message_delta(self, delta: Any, usage: Any) -> list[ProviderEvent]:
        events: list[ProviderEvent] = []
        self._add_usage(usage, events)
        native = delta.get("stop_reason") if isinstance(delta, dict) else None
        if isinstance(native, str):
            assert isinstance(delta, dict)
            sequence = delta.get("stop_sequence")
            stop = sequence if isinstance(sequence, str) else None
            events.append(Finish(normalize_finish_reason(native), native, stop_sequence=stop))
        return events


# --------------------------------------------------------------------------------------- provider


class AnthropicProvider(HttpProvider):
    """``POST {base_url}/v1/messages``, streamed or not, with the key in ``x-api-key``."""

    supported_parameters = frozenset(
        {
            "max_tokens",
            "temperature",
            "top_p",
            "top_k",
            "stop",
            "tools",
            "tool_choice",
            "parallel_tool_calls",
            "n",
        }
    )
    """What :func:`messages_body` translates (``provider.require_parameters`` skips it for the rest)."""

    def __init__(self, name: str, config: ProviderConfig) -> None:
        assert config.base_url is not None
        headers = {"content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        if config.api_key is not None:
            headers["x-api-key"] = config.api_key.get_secret_value()
        super().__init__(name, config, messages_url(config.base_url), headers)

    def _payload(self, call: UpstreamCall, *, stream: bool) -> bytes:
        return orjson.dumps(messages_body(call, self._failure, stream=stream))

    def _completion(self, raw: bytes) -> Completion:
        return completion_from_message(raw, self._failure)

    def _translator(self) -> StreamTranslator:
        return StreamTranslator(self._failure)
