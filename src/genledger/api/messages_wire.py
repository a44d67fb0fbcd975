"""Anthropic's Messages API request (``POST /messages``), parsed once into a ChatRequest.

The chat request keeps everything the Messages request says in the chat shape the core
uses, so that :func:`genledger.providers.anthropic.messages_body` rebuilds the same
Messages request for an Anthropic provider (a test pins the round trip) and any other
provider gets its chat equivalent: ``system`` blocks become a system message (their
``cache_control`` kept), ``tool_use`` blocks an assistant message's ``tool_calls``,
``tool_result`` blocks ``tool`` messages, images ``image_url`` parts, tools and
``tool_choice`` their chat forms, ``stop_sequences`` ``stop``, ``metadata.user_id`` the
user. What has no chat form (the ``thinking`` option, documents, ``is_error`` results,
server tools) is refused with a 400 that names it. An earlier assistant turn's ``thinking``
and ``redacted_thinking`` blocks (what genledger answered with, sent back as an agent loop
does) are accepted and not sent on: chat messages carry no reasoning input, and a reasoning
model does not need its earlier reasoning to go on.
"""

from __future__ import annotations

from typing import Any

import orjson

from genledger.api.inbound import bad, load_object, object_at, only, short_text, typed
from genledger.api.wire import MAX_TOKENS, _fallback_models, _provider_preferences, _session_id
from genledger.core.chat import ChatRequest
from genledger.core.generation import MAX_EXTERNAL_USER

_FIELDS = frozenset(
    {
        "model", "messages", "system", "max_tokens", "stream", "temperature", "top_p", "top_k",
        "stop_sequences", "tools", "tool_choice", "metadata", "models", "provider", "session_id",
    }
)  # fmt: skip
_TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def parse_messages_request(raw: bytes, *, session_header: str | None = None) -> ChatRequest:
    """Validate a Messages request body; 400 naming the offending field otherwise."""
    body = load_object(raw)
    only(body, _FIELDS)
    fallback_models = _fallback_models(body.get("models"))
    model = typed(body, "model", str) or (fallback_models[0] if fallback_models else None)
    if not model:
        raise bad("model", "'model' is required and must be a non-empty string")
    max_tokens = typed(body, "max_tokens", int, required=True)
    if not 1 <= max_tokens <= MAX_TOKENS:
        raise bad("max_tokens", f"'max_tokens' must be an integer from 1 to {MAX_TOKENS}")

    messages = _system(body.get("system"))
    raw_messages = typed(body, "messages", list, required=True)
    if not raw_messages:
        raise bad("messages", "'messages' must not be empty")
    for index, message in enumerate(raw_messages):
        messages.extend(_message(object_at(message, f"messages[{index}]"), f"messages[{index}]"))

    params: dict[str, Any] = {}
    for name in ("temperature", "top_p"):
        if (value := typed(body, name, int, float)) is not None:
            params[name] = value
    if (top_k := typed(body, "top_k", int)) is not None:
        params["top_k"] = top_k
    stop = typed(body, "stop_sequences", list)
    if stop:
        if not all(isinstance(s, str) for s in stop):
            raise bad("stop_sequences", "'stop_sequences' must be an array of strings")
        params["stop"] = stop
    tools = typed(body, "tools", list)
    if tools:
        params["tools"] = [
            _tool(object_at(tool, f"tools[{i}]"), f"tools[{i}]") for i, tool in enumerate(tools)
        ]
    if body.get("tool_choice") is not None:
        params.update(_tool_choice(object_at(body["tool_choice"], "tool_choice")))

    user = None
    if body.get("metadata") is not None:
        metadata = object_at(body["metadata"], "metadata")
        only(metadata, {"user_id"}, "metadata")
        user = short_text(metadata, "user_id", MAX_EXTERNAL_USER, where="metadata")
    return ChatRequest(
        model=model,
        messages=tuple(messages),
        stream=typed(body, "stream", bool) or False,
        max_tokens=max_tokens,
        user=user,
        params=params,
        fallback_models=fallback_models,
        provider=_provider_preferences(body.get("provider")),
        session_id=_session_id(body.get("session_id"), session_header),
    )


def _system(value: Any) -> list[dict[str, Any]]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [{"role": "system", "content": value}]
    if not isinstance(value, list):
        raise bad("system", "'system' must be a string or an array of text blocks")
    parts = [_text_part(object_at(block, f"system[{i}]"), f"system[{i}]") for i, block in enumerate(value)]
    return [{"role": "system", "content": parts}] if parts else []


def _text_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    if block.get("type") != "text":
        raise bad(f"{where}.type", f"'{where}.type' must be 'text'")
    only(block, {"type", "text", "cache_control"}, where)
    part: dict[str, Any] = {"type": "text", "text": typed(block, "text", str, where=where, required=True)}
    if block.get("cache_control") is not None:
        part["cache_control"] = object_at(block["cache_control"], f"{where}.cache_control")
    return part


def _image_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    only(block, {"type", "source", "cache_control"}, where)
    source = object_at(block.get("source"), f"{where}.source")
    kind = source.get("type")
    if kind == "base64":
        only(source, {"type", "media_type", "data"}, f"{where}.source")
        media_type = typed(source, "media_type", str, where=f"{where}.source", required=True)
        data = typed(source, "data", str, where=f"{where}.source", required=True)
        url = f"data:{media_type};base64,{data}"
    elif kind == "url":
        only(source, {"type", "url"}, f"{where}.source")
        url = typed(source, "url", str, where=f"{where}.source", required=True)
    else:
        raise bad(f"{where}.source.type", f"'{where}.source.type' must be 'base64' or 'url'")
    part: dict[str, Any] = {"type": "image_url", "image_url": {"url": url}}
    if block.get("cache_control") is not None:
        part["cache_control"] = object_at(block["cache_control"], f"{where}.cache_control")
    return part


def _message(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """One Messages turn as chat messages (a user turn's tool results come first, as ``tool``)."""
    only(message, {"role", "content"}, where)
    role = message.get("role")
    if role not in ("user", "assistant"):
        raise bad(f"{where}.role", f"'{where}.role' must be 'user' or 'assistant'")
    content = typed(message, "content", str, list, where=where, required=True)
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if role == "assistant":
        return [_assistant(content, where)]
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for index, raw_block in enumerate(content):
        at = f"{where}.content[{index}]"
        block = object_at(raw_block, at)
        kind = block.get("type")
        if kind == "text":
            parts.append(_text_part(block, at))
        elif kind == "image":
            parts.append(_image_part(block, at))
        elif kind == "tool_result":
            results.append(_tool_result(block, at))
        else:
            raise bad(f"{at}.type", f"'{at}.type' {kind!r} is not supported")
    turn = [{"role": "user", "content": parts}] if parts else []
    return results + turn


def _assistant(content: list[Any], where: str) -> dict[str, Any]:
    texts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for index, raw_block in enumerate(content):
        at = f"{where}.content[{index}]"
        block = object_at(raw_block, at)
        kind = block.get("type")
        if kind == "text":
            texts.append(_text_part(block, at))
        elif kind in ("thinking", "redacted_thinking"):
            only(block, {"type", "thinking", "signature", "data"}, at)  # not sent on (see above)
        elif kind == "tool_use":
            only(block, {"type", "id", "name", "input"}, at)
            arguments = typed(block, "input", dict, where=at, required=True)
            calls.append(
                {
                    "id": typed(block, "id", str, where=at, required=True),
                    "type": "function",
                    "function": {
                        "name": typed(block, "name", str, where=at, required=True),
                        "arguments": orjson.dumps(arguments).decode(),
                    },
                }
            )
        else:
            raise bad(f"{at}.type", f"'{at}.type' {kind!r} is not supported")
    message: dict[str, Any] = {"role": "assistant", "content": _joined(texts)}
    if calls:
        message["tool_calls"] = calls
    return message


def _joined(texts: list[dict[str, Any]]) -> str | list[dict[str, Any]] | None:
    """Text parts as one string, unless one carries a cache breakpoint."""
    if not texts:
        return None
    if any("cache_control" in part for part in texts):
        return texts
    return "".join(part["text"] for part in texts)


def _tool_result(block: dict[str, Any], where: str) -> dict[str, Any]:
    only(block, {"type", "tool_use_id", "content", "is_error"}, where)
    if typed(block, "is_error", bool, where=where):
        raise bad(
            f"{where}.is_error", f"'{where}.is_error' is not supported: chat tool results have no error flag"
        )
    message: dict[str, Any] = {
        "role": "tool",
        "tool_call_id": typed(block, "tool_use_id", str, where=where, required=True),
    }
    content = typed(block, "content", str, list, where=where)
    if isinstance(content, list):
        parts = []
        for index, raw_part in enumerate(content):
            at = f"{where}.content[{index}]"
            part = object_at(raw_part, at)
            parts.append(_image_part(part, at) if part.get("type") == "image" else _text_part(part, at))
        content = parts
    message["content"] = content if content is not None else ""
    return message


def _tool(tool: dict[str, Any], where: str) -> dict[str, Any]:
    if tool.get("type") not in (None, "custom"):
        raise bad(f"{where}.type", f"'{where}.type' {tool['type']!r} is not supported: only client tools")
    only(tool, {"type", "name", "description", "input_schema", "cache_control"}, where)
    function: dict[str, Any] = {
        "name": typed(tool, "name", str, where=where, required=True),
        "parameters": typed(tool, "input_schema", dict, where=where, required=True),
    }
    if (description := typed(tool, "description", str, where=where)) is not None:
        function["description"] = description
    translated: dict[str, Any] = {"type": "function", "function": function}
    if tool.get("cache_control") is not None:
        translated["cache_control"] = object_at(tool["cache_control"], f"{where}.cache_control")
    return translated


def _tool_choice(choice: dict[str, Any]) -> dict[str, Any]:
    only(choice, {"type", "name", "disable_parallel_tool_use"}, "tool_choice")
    kind = choice.get("type")
    params: dict[str, Any] = {}
    if kind in _TOOL_CHOICES:
        params["tool_choice"] = _TOOL_CHOICES[kind]
    elif kind == "tool":
        name = typed(choice, "name", str, where="tool_choice", required=True)
        params["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        raise bad("tool_choice.type", "'tool_choice.type' must be 'auto', 'any', 'tool' or 'none'")
    if typed(choice, "disable_parallel_tool_use", bool, where="tool_choice"):
        params["parallel_tool_calls"] = False
    return params
