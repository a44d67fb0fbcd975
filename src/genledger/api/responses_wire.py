"""OpenAI's Responses API request (``POST /responses``), parsed once into a ChatRequest.

Input items become chat messages (``instructions`` a system message first, function calls
an assistant message's ``tool_calls``, their outputs ``tool`` messages), function tools
become chat tools, ``max_output_tokens`` the token limit, ``text.format`` the response
format. Every other field is refused with a 400 that names it: stored responses are not
kept, so ``previous_response_id`` and ``store: true`` are refused.
"""

from __future__ import annotations

from typing import Any

from genledger.api.inbound import bad, load_object, object_at, only, short_text, typed
from genledger.api.wire import (
    MAX_TOKENS,
    _fallback_models,
    _metadata,
    _provider_preferences,
    _session_id,
)
from genledger.core.chat import ChatRequest
from genledger.core.generation import MAX_EXTERNAL_USER
from genledger.core.records import record

_FIELDS = frozenset(
    {
        "model", "input", "instructions", "tools", "tool_choice", "max_output_tokens", "temperature",
        "top_p", "frequency_penalty", "presence_penalty", "seed", "top_k", "stream", "user",
        "metadata", "parallel_tool_calls", "previous_response_id", "store", "text", "reasoning",
        "truncation", "include", "service_tier", "models", "provider", "session_id",
    }
)  # fmt: skip
_NUMBERS = ("temperature", "top_p", "frequency_penalty", "presence_penalty")
_ROLES = frozenset({"user", "system", "developer", "assistant"})
_TEXT_PARTS = frozenset({"input_text", "output_text"})


@record
class ResponsesRequest:
    """A Responses request: the chat request to serve, and the fields the answer repeats."""

    chat: ChatRequest
    echo: dict[str, Any]


def parse_responses_request(raw: bytes, *, session_header: str | None = None) -> ResponsesRequest:
    """Validate a Responses request body; 400 naming the offending field otherwise."""
    body = load_object(raw)
    only(body, _FIELDS)
    if body.get("previous_response_id") is not None:
        raise bad(
            "previous_response_id",
            "'previous_response_id' is not supported: genledger does not store responses; "
            "send the whole conversation in 'input'",
        )
    if typed(body, "store", bool):
        raise bad("store", "'store': true is not supported: genledger does not store responses")
    if typed(body, "truncation", str) not in (None, "disabled"):
        raise bad("truncation", "'truncation' may only be 'disabled'")
    if typed(body, "service_tier", str) not in (None, "auto", "default"):
        raise bad("service_tier", "'service_tier' may only be 'auto' or 'default' (the provider's own tier)")
    if typed(body, "include", list):
        raise bad("include", "'include' is not supported (no extra output data is available)")

    fallback_models = _fallback_models(body.get("models"))
    model = typed(body, "model", str) or (fallback_models[0] if fallback_models else None)
    if not model:
        raise bad("model", "'model' is required and must be a non-empty string")

    messages = _input(body.get("input"))
    instructions = typed(body, "instructions", str)
    if instructions:
        messages.insert(0, {"role": "system", "content": instructions})

    max_tokens = typed(body, "max_output_tokens", int)
    if max_tokens is not None and not 1 <= max_tokens <= MAX_TOKENS:
        raise bad("max_output_tokens", f"'max_output_tokens' must be an integer from 1 to {MAX_TOKENS}")

    params: dict[str, Any] = {}
    for name in _NUMBERS:
        if (value := typed(body, name, int, float)) is not None:
            params[name] = value
    for name in ("seed", "top_k"):
        if (value := typed(body, name, int)) is not None:
            params[name] = value
    tools = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(typed(body, "tools", list) or [])]
    if tools:
        params["tools"] = tools
    tool_choice = body.get("tool_choice")
    if tool_choice is not None:
        params["tool_choice"] = _tool_choice(tool_choice)
    parallel = typed(body, "parallel_tool_calls", bool)
    if parallel is not None:
        params["parallel_tool_calls"] = parallel
    params.update(_text(body.get("text")))
    effort = _reasoning_effort(body.get("reasoning"))
    if effort is not None:
        params["reasoning"] = {"effort": effort}

    stream = typed(body, "stream", bool) or False
    chat = ChatRequest(
        model=model,
        messages=tuple(messages),
        stream=stream,
        max_tokens=max_tokens,
        user=short_text(body, "user", MAX_EXTERNAL_USER),
        params=params,
        fallback_models=fallback_models,
        provider=_provider_preferences(body.get("provider")),
        session_id=_session_id(body.get("session_id"), session_header),
        metadata=_metadata(body.get("metadata")),
    )
    echo = {
        "instructions": instructions,
        "max_output_tokens": max_tokens,
        "metadata": chat.metadata or {},
        "parallel_tool_calls": True if parallel is None else parallel,
        "reasoning": {"effort": effort} if effort is not None else None,
        "temperature": params.get("temperature"),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": tool_choice if tool_choice is not None else "auto",
        "top_p": params.get("top_p"),
        "frequency_penalty": params.get("frequency_penalty"),
        "presence_penalty": params.get("presence_penalty"),
        "user": chat.user,
    }
    return ResponsesRequest(chat, echo)


def _input(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        if not value:
            raise bad("input", "'input' must not be empty")
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise bad("input", "'input' is required: a string or a non-empty array of items")
    messages: list[dict[str, Any]] = []
    for index, raw_item in enumerate(value):
        where = f"input[{index}]"
        item = object_at(raw_item, where)
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            _function_call(item, where, messages)
        elif kind == "function_call_output":
            only(item, {"type", "call_id", "output", "id", "status"}, where)
            call_id = typed(item, "call_id", str, where=where, required=True)
            output = typed(item, "output", str, list, where=where, required=True)
            if isinstance(output, list):
                output = _content(output, f"{where}.output", "user")
            messages.append({"role": "tool", "tool_call_id": call_id, "content": output})
        elif kind == "reasoning":
            # An earlier answer's reasoning item (genledger's own output, sent back as an agent
            # loop does): accepted and not sent on, since chat messages carry no reasoning input.
            only(item, {"type", "id", "summary", "content", "status", "encrypted_content"}, where)
        else:
            raise bad(f"{where}.type", f"'{where}.type' {kind!r} is not supported")
    return messages


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    only(item, {"type", "role", "content", "id", "status"}, where)
    role = item.get("role")
    if role not in _ROLES:
        raise bad(f"{where}.role", f"'{where}.role' must be one of {', '.join(sorted(_ROLES))}")
    content = typed(item, "content", str, list, where=where, required=True)
    if isinstance(content, list):
        content = _content(content, f"{where}.content", role)
    return {"role": role, "content": content}


def _content(parts: list[Any], where: str, role: str) -> str | list[dict[str, Any]]:
    """Input content parts as chat content parts (assistant text as one string)."""
    converted: list[dict[str, Any]] = []
    for index, raw_part in enumerate(parts):
        at = f"{where}[{index}]"
        part = object_at(raw_part, at)
        kind = part.get("type")
        if kind in _TEXT_PARTS:
            only(part, {"type", "text", "annotations", "logprobs"}, at)
            converted.append({"type": "text", "text": typed(part, "text", str, where=at, required=True)})
        elif kind == "input_image" and role != "assistant":
            only(part, {"type", "image_url", "detail"}, at)
            image: dict[str, Any] = {"url": typed(part, "image_url", str, where=at, required=True)}
            if (detail := typed(part, "detail", str, where=at)) is not None:
                image["detail"] = detail
            converted.append({"type": "image_url", "image_url": image})
        else:
            raise bad(f"{at}.type", f"'{at}.type' {kind!r} is not supported here")
    texts = [part["text"] for part in converted if part["type"] == "text"]
    if role == "assistant":
        if len(texts) != len(converted):
            raise bad(where, f"'{where}' of an assistant message may hold only text")
        return "".join(texts)
    return converted


def _function_call(item: dict[str, Any], where: str, messages: list[dict[str, Any]]) -> None:
    """Add a call to the assistant message just before it, or start one."""
    only(item, {"type", "call_id", "name", "arguments", "id", "status"}, where)
    call = {
        "id": typed(item, "call_id", str, where=where, required=True),
        "type": "function",
        "function": {
            "name": typed(item, "name", str, where=where, required=True),
            "arguments": typed(item, "arguments", str, where=where, required=True),
        },
    }
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant" and isinstance(last.get("content"), str | None):
        last.setdefault("tool_calls", []).append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _tool(raw: Any, where: str) -> dict[str, Any]:
    tool = object_at(raw, where)
    if tool.get("type") != "function":
        raise bad(f"{where}.type", f"'{where}.type' {tool.get('type')!r} is not supported: only 'function'")
    only(tool, {"type", "name", "description", "parameters", "strict"}, where)
    function: dict[str, Any] = {"name": typed(tool, "name", str, where=where, required=True)}
    if (description := typed(tool, "description", str, where=where)) is not None:
        function["description"] = description
    if (parameters := typed(tool, "parameters", dict, where=where)) is not None:
        function["parameters"] = parameters
    if (strict := typed(tool, "strict", bool, where=where)) is not None:
        function["strict"] = strict
    return {"type": "function", "function": function}


def _tool_choice(value: Any) -> Any:
    if value in ("auto", "none", "required"):
        return value
    if isinstance(value, dict) and value.get("type") == "function" and isinstance(value.get("name"), str):
        only(value, {"type", "name"}, "tool_choice")
        return {"type": "function", "function": {"name": value["name"]}}
    raise bad(
        "tool_choice",
        "'tool_choice' must be 'auto', 'none', 'required' or {\"type\": \"function\", \"name\": ...}",
    )


def _text(value: Any) -> dict[str, Any]:
    """``text.format`` and ``text.verbosity`` as chat options."""
    if value is None:
        return {}
    text = object_at(value, "text")
    only(text, {"format", "verbosity"}, "text")
    params: dict[str, Any] = {}
    if (verbosity := typed(text, "verbosity", str, where="text")) is not None:
        params["verbosity"] = verbosity
    form = text.get("format")
    if form is None:
        return params
    form = object_at(form, "text.format")
    kind = form.get("type")
    if kind == "text":
        only(form, {"type"}, "text.format")
    elif kind == "json_object":
        only(form, {"type"}, "text.format")
        params["response_format"] = {"type": "json_object"}
    elif kind == "json_schema":
        only(form, {"type", "name", "schema", "strict", "description"}, "text.format")
        schema = {k: v for k, v in form.items() if k != "type" and v is not None}
        typed(form, "name", str, where="text.format", required=True)
        typed(form, "schema", dict, where="text.format", required=True)
        params["response_format"] = {"type": "json_schema", "json_schema": schema}
    else:
        raise bad("text.format.type", "'text.format.type' must be 'text', 'json_object' or 'json_schema'")
    return params


def _reasoning_effort(value: Any) -> str | None:
    if value is None:
        return None
    reasoning = object_at(value, "reasoning")
    only(reasoning, {"effort"}, "reasoning")
    effort: str | None = typed(reasoning, "effort", str, where="reasoning")
    return effort
