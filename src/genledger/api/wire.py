"""OpenAI/OpenRouter JSON in and out: parsed once here into internal types, rendered once here."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal, cast

from genledger.api.inbound import load_object, query_int, short_text
from genledger.core.chat import NO_PREFERENCES, SORTS, ChatRequest, MaxPrice, ProviderPreferences, SortBy
from genledger.core.generation import MAX_EXTERNAL_USER
from genledger.core.records import record
from genledger.errors import BadRequest
from genledger.gateway.catalog import ModelEntry

# Options passed on to OpenAI-compatible upstreams, each with the JSON types it may take.
_PASSTHROUGH: dict[str, tuple[type, ...]] = {
    "temperature": (int, float),
    "top_p": (int, float),
    "top_k": (int,),
    "min_p": (int, float),
    "top_a": (int, float),
    "frequency_penalty": (int, float),
    "presence_penalty": (int, float),
    "repetition_penalty": (int, float),
    "seed": (int,),
    "stop": (str, list),
    "n": (int,),
    "logit_bias": (dict,),
    "logprobs": (bool,),
    "top_logprobs": (int,),
    "tools": (list,),
    "tool_choice": (str, dict),
    "parallel_tool_calls": (bool,),
    "response_format": (dict,),
    "reasoning_effort": (str,),
    "reasoning": (dict,),
    "modalities": (list,),
    "prediction": (dict,),
    "verbosity": (str,),
}
# Accepted and not passed on: OpenRouter routing options and stream options we set ourselves.
_CONSUMED = {
    "model", "messages", "stream", "max_tokens", "max_completion_tokens", "user", "stream_options",
    "models", "provider", "route", "transforms", "usage", "plugins", "session_id", "store", "metadata",
    "service_tier",
}  # fmt: skip
_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
MAX_ID_LENGTH = 200
MAX_FALLBACK_MODELS = 8
MAX_TOKENS = 10_000_000
MAX_SESSION_ID = 256
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512


MAX_CHOICES = 128  # ``n`` (and a prompt completion's ``best_of``): OpenAI's own bound


def type_name(types: tuple[type, ...]) -> str:
    names = {int: "integer", float: "number", str: "string", list: "array", dict: "object", bool: "boolean"}
    return " or ".join(names[t] for t in types)


def passed_on(name: str, value: Any, types: tuple[type, ...]) -> Any:
    """An option passed on upstream, checked for its JSON type; a count of choices (``n``,
    ``best_of``) also for its range, since every choice is reserved and billed."""
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
        raise BadRequest(f"'{name}' must be {type_name(types)}", metadata={"param": name})
    if name in ("n", "best_of") and not (isinstance(value, int) and 1 <= value <= MAX_CHOICES):
        raise BadRequest(f"'{name}' must be an integer from 1 to {MAX_CHOICES}", metadata={"param": name})
    return value


@record
class Routing:
    """The fields every inference request shares: what to route, and what to record it under."""

    model: str
    fallback_models: tuple[str, ...]
    provider: ProviderPreferences
    user: str | None
    session_id: str | None
    metadata: dict[str, str] | None


ROUTING_FIELDS = frozenset({"model", "models", "provider", "user", "session_id", "metadata"})


def parse_routing(body: dict[str, Any], *, session_header: str | None = None) -> Routing:
    """``model`` (or the first of ``models``), ``provider``, ``user``, ``session_id``, ``metadata``."""
    fallback_models = _fallback_models(body.get("models"))
    model = body.get("model")
    if model is None and fallback_models:
        model = fallback_models[0]
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required and must be a non-empty string", metadata={"param": "model"})
    user = short_text(body, "user", MAX_EXTERNAL_USER)
    return Routing(
        model=model,
        fallback_models=fallback_models,
        provider=_provider_preferences(body.get("provider")),
        user=user,
        session_id=_session_id(body.get("session_id"), session_header),
        metadata=_metadata(body.get("metadata")),
    )


def refuse_unknown(body: dict[str, Any], known: frozenset[str]) -> None:
    """A 400 naming the first field outside ``known`` that is set (null counts as unset)."""
    for name, value in body.items():
        if name not in known and value is not None:
            raise BadRequest(f"'{name}' is not supported on this route", metadata={"param": name})


def parse_chat_request(raw: bytes, *, session_header: str | None = None) -> ChatRequest:
    """Validate a chat completion request body; 400 with the offending field otherwise.

    ``session_header`` is the ``x-session-id`` header: the session when the body names none.
    """
    body = load_object(raw)

    fallback_models = _fallback_models(body.get("models"))
    model = body.get("model")
    if model is None and fallback_models:
        model = fallback_models[0]
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required and must be a non-empty string", metadata={"param": "model"})

    messages = _messages(body.get("messages"))

    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean", metadata={"param": "stream"})

    max_tokens = _max_tokens(body)
    if not _TAKEN_AS_THEY_ARE.isdisjoint(body):  # (one set operation when none is sent)
        _check_openrouter_options(body)

    user = short_text(body, "user", MAX_EXTERNAL_USER)

    return ChatRequest(
        model=model,
        messages=messages,
        stream=stream,
        max_tokens=max_tokens,
        user=user,
        params=_params(body),
        fallback_models=fallback_models,
        provider=_provider_preferences(body.get("provider")),
        session_id=_session_id(body.get("session_id"), session_header),
        metadata=_metadata(body.get("metadata")),
    )


def _session_id(value: Any, header: str | None) -> str | None:
    """The body's ``session_id``, else the ``x-session-id`` header (OpenRouter's rule)."""
    name = "session_id"
    if value is None:
        value, name = header, "x-session-id"
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_SESSION_ID:
        raise BadRequest(
            f"'{name}' must be a non-empty string of at most {MAX_SESSION_ID} characters",
            metadata={"param": name},
        )
    return value


def _metadata(value: Any) -> dict[str, str] | None:
    """OpenAI's request ``metadata``: at most 16 pairs of short strings."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest("'metadata' must be an object of strings", metadata={"param": "metadata"})
    if len(value) > MAX_METADATA_PAIRS:
        raise BadRequest(
            f"'metadata' may have at most {MAX_METADATA_PAIRS} keys", metadata={"param": "metadata"}
        )
    for key, item in value.items():
        if not key or len(key) > MAX_METADATA_KEY:
            raise BadRequest(
                f"'metadata' keys must have 1 to {MAX_METADATA_KEY} characters",
                metadata={"param": f"metadata.{key[:MAX_METADATA_KEY]}"},
            )
        if not isinstance(item, str) or len(item) > MAX_METADATA_VALUE:
            raise BadRequest(
                f"'metadata.{key}' must be a string of at most {MAX_METADATA_VALUE} characters",
                metadata={"param": f"metadata.{key}"},
            )
        if "\x00" in key or "\x00" in item:
            raise BadRequest(
                "'metadata' keys and values must not contain a NUL character",
                metadata={"param": f"metadata.{key.replace(chr(0), '')}"},
            )
    return dict(value)


def _messages(messages: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(messages, list) or not messages:
        raise BadRequest(
            "'messages' is required and must be a non-empty array", metadata={"param": "messages"}
        )
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise BadRequest(f"'{where}' must be an object", metadata={"param": where})
        if message.get("role") not in _ROLES:
            raise BadRequest(
                f"'{where}.role' must be one of {', '.join(sorted(_ROLES))}",
                metadata={"param": f"{where}.role"},
            )
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise BadRequest(
                f"'{where}.content' must be a string, an array of parts or null",
                metadata={"param": f"{where}.content"},
            )
    return tuple(messages)


def _params(body: dict[str, Any]) -> dict[str, Any]:
    """The sampling options to pass on, each checked for its JSON type."""
    params: dict[str, Any] = {}
    for name, value in body.items():
        if name in _CONSUMED or value is None:
            continue
        types = _PASSTHROUGH.get(name)
        if types is None:  # honoured, or refused by name: never dropped unseen
            raise BadRequest(f"'{name}' is not supported on this route", metadata={"param": name})
        params[name] = passed_on(name, value, types)
    return params


def _max_tokens(body: dict[str, Any]) -> int | None:
    """``max_completion_tokens`` (OpenAI's newer name) or ``max_tokens``; both only if alike."""
    found: int | None = None
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOKENS:
            raise BadRequest(f"'{name}' must be an integer from 1 to {MAX_TOKENS}", metadata={"param": name})
        if found is not None and value != found:
            raise BadRequest(
                "'max_completion_tokens' and 'max_tokens' differ: send one of them",
                metadata={"param": "max_completion_tokens"},
            )
        found = value
    return found


_TAKEN_AS_THEY_ARE = frozenset(
    {"stream_options", "usage", "plugins", "transforms", "route", "store", "service_tier"}
)


def _check_openrouter_options(body: dict[str, Any]) -> None:
    """The options this gateway takes as they are, checked: each is honoured by what it always
    does (usage with its cost in every answer, fallback in the order of ``models``, no
    transforms, no plugins, nothing stored for the upstream), and refused when it asks for more."""
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_obfuscation") is False:
        # OpenAI's padding of stream events against size side channels: never added here, so
        # asking for none is what is done; asking for it is refused below, by name.
        body = {**body, "stream_options": {k: v for k, v in options.items() if k != "include_obfuscation"}}
    _only_flag(body, "stream_options", "include_usage", "the usage chunk is always sent")
    _only_flag(body, "usage", "include", "usage and its cost are always included")
    for name in ("plugins", "transforms"):
        value = body.get(name)
        if value is not None and not isinstance(value, list):
            raise BadRequest(f"'{name}' must be an array", metadata={"param": name})
        if value:
            raise BadRequest(f"'{name}' are not supported by this gateway", metadata={"param": name})
    route = body.get("route")
    if route is not None and route != "fallback":
        raise BadRequest(
            "'route' may only be \"fallback\" (the models are tried in order)", metadata={"param": "route"}
        )
    tier = body.get("service_tier")
    if tier is not None and tier not in ("auto", "default"):
        raise BadRequest(
            "'service_tier' may only be 'auto' or 'default' (the provider's own tier)",
            metadata={"param": "service_tier"},
        )
    store = body.get("store")
    if store is not None and store is not False:
        raise BadRequest(
            "'store' may only be false: this gateway stores no completions for the upstream",
            metadata={"param": "store"},
        )


def _only_flag(body: dict[str, Any], name: str, flag: str, why: str) -> None:
    """``name``, when set, must be an object setting at most ``flag``, a boolean."""
    value = body.get(name)
    if value is not None and (
        not isinstance(value, dict) or set(value) - {flag} or not isinstance(value.get(flag), bool | None)
    ):
        raise BadRequest(f"'{name}' may only set {flag}, a boolean ({why})", metadata={"param": name})


def _strings(name: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BadRequest(f"'{name}' must be an array of non-empty strings", metadata={"param": name})
    return tuple(value)


def _fallback_models(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    models = _strings("models", value)
    if len(models) > MAX_FALLBACK_MODELS:
        raise BadRequest(
            f"'models' may name at most {MAX_FALLBACK_MODELS} models", metadata={"param": "models"}
        )
    return models


_PROVIDER_FIELDS = frozenset(
    {"order", "only", "ignore", "allow_fallbacks", "sort", "max_price", "require_parameters"}
)
_MAX_PRICE_FIELDS = ("prompt", "completion", "request", "image", "audio")
_PARTITIONS = ("model", "none")


def _flag(value: dict[str, Any], name: str, default: bool) -> bool:
    flag = value.get(name, default)
    if flag is None:
        return default
    if not isinstance(flag, bool):
        raise BadRequest(f"'provider.{name}' must be a boolean", metadata={"param": f"provider.{name}"})
    return flag


def _sort(value: Any) -> tuple[SortBy | None, Literal["model", "none"]]:
    """``provider.sort``: a name, or ``{"by", "partition"}`` as OpenRouter's SDK sends it."""
    by, partition = value, "model"
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"by", "partition"})
        if unknown:
            raise BadRequest(
                f"'provider.sort.{unknown[0]}' is not supported",
                metadata={"param": f"provider.sort.{unknown[0]}"},
            )
        by, partition = value.get("by"), value.get("partition") or "model"
        if partition not in _PARTITIONS:
            raise BadRequest(
                "'provider.sort.partition' must be one of model, none",
                metadata={"param": "provider.sort.partition"},
            )
    if by is None:
        return None, cast(Literal["model", "none"], partition)
    if by not in SORTS:
        raise BadRequest(
            f"'provider.sort' must be one of {', '.join(SORTS)}", metadata={"param": "provider.sort"}
        )
    return cast(SortBy, by), cast(Literal["model", "none"], partition)


def _max_price(value: Any) -> MaxPrice | None:
    """``provider.max_price``: USD per million tokens (per request or image), numbers or strings."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest("'provider.max_price' must be an object", metadata={"param": "provider.max_price"})
    prices: dict[str, Decimal] = {}
    for name, item in value.items():
        param = f"provider.max_price.{name}"
        if name not in _MAX_PRICE_FIELDS:
            raise BadRequest(f"'{param}' is not supported", metadata={"param": param})
        if item is None:
            continue
        try:
            if isinstance(item, bool) or not isinstance(item, int | float | str):
                raise ValueError
            price = Decimal(str(item))
            if not price.is_finite():
                raise ValueError
        except (ValueError, ArithmeticError):
            raise BadRequest(f"'{param}' must be a number", metadata={"param": param}) from None
        prices[name] = price
    return MaxPrice(**prices)


def _provider_preferences(value: Any) -> ProviderPreferences:
    """OpenRouter's ``provider`` object; a field genledger does not honour is a 400 naming it."""
    if value is None:
        return NO_PREFERENCES
    if not isinstance(value, dict):
        raise BadRequest("'provider' must be an object", metadata={"param": "provider"})
    for name in value:
        if name not in _PROVIDER_FIELDS and value[name] is not None:
            raise BadRequest(
                f"'provider.{name}' is not supported by this gateway", metadata={"param": f"provider.{name}"}
            )
    only = value.get("only")
    sort, partition = _sort(value.get("sort"))
    return ProviderPreferences(
        order=_strings("provider.order", value["order"]) if value.get("order") is not None else (),
        only=_strings("provider.only", only) if only is not None else None,
        ignore=_strings("provider.ignore", value["ignore"]) if value.get("ignore") is not None else (),
        allow_fallbacks=_flag(value, "allow_fallbacks", True),
        sort=sort,
        sort_partition=partition,
        max_price=_max_price(value.get("max_price")),
        require_parameters=_flag(value, "require_parameters", False),
    )


def parse_generation_id(value: str | None) -> str:
    if value is None or not value.strip():
        raise BadRequest("Query parameter 'id' is required", metadata={"param": "id"})
    if len(value) > MAX_ID_LENGTH:
        raise BadRequest(f"'id' is longer than {MAX_ID_LENGTH} characters", metadata={"param": "id"})
    return value.strip()


def per_token(price_per_million: Decimal | None) -> str:
    if price_per_million is None:
        return "0"
    return format((price_per_million / 1_000_000).normalize(), "f")


def model_json(entry: ModelEntry) -> dict[str, Any]:
    """A model in OpenRouter's ``/models`` list shape; prices in USD per token, as strings."""
    price = entry.price
    return {
        "id": entry.slug,
        "canonical_slug": entry.slug,
        "name": entry.name,
        "created": 0,
        "description": f"{entry.name}, served by genledger provider '{entry.endpoints[0].provider}'",
        "context_length": entry.context_length,
        "architecture": architecture_json(entry),
        "pricing": {
            "prompt": per_token(price.prompt),
            "completion": per_token(price.completion),
            "request": "0",
            "image": "0",
            "web_search": "0",
            "internal_reasoning": per_token(price.reasoning or price.completion),
            "input_cache_read": per_token(price.cached_prompt or price.prompt),
            "input_cache_write": per_token(price.cache_write or price.prompt),
        },
        "top_provider": {
            "context_length": entry.context_length,
            "max_completion_tokens": entry.max_output_tokens,
            "is_moderated": False,
        },
        "per_request_limits": None,
        "default_parameters": None,
        "supported_voices": None,
        "links": {"details": f"/api/v1/models/{entry.slug}/endpoints"},
        "supported_parameters": supported_parameters(entry),
        # Extensions: the ledger's version of these prices and since when it is in effect.
        "price_version": entry.version.version if entry.version else None,
        "price_effective_at": entry.version.effective_at.isoformat() if entry.version else None,
    }


def supported_parameters(entry: ModelEntry) -> list[str]:
    """The request parameters the model's routes accept and pass on."""
    if entry.kind == "embeddings":
        return ["dimensions", "encoding_format", "input_type", "user"]
    return sorted(["max_tokens", "stream", "user", *_PASSTHROUGH])


def architecture_json(entry: ModelEntry) -> dict[str, Any]:
    output = "embeddings" if entry.kind == "embeddings" else "text"
    return {
        "modality": f"text->{output}",
        "input_modalities": ["text"],
        "output_modalities": [output],
        "tokenizer": "Other",
        "instruct_type": None,
    }


MAX_MODELS_PAGE = 1000  # OpenRouter's
MAX_MODELS_OFFSET = 10**9


def parse_models_page(params: Mapping[str, str]) -> tuple[int, int | None]:
    """``offset`` and ``limit`` of a ``/models`` list (the official SDK sends 0 and 500); no
    limit: the rest of the catalog."""
    offset = query_int(params, "offset", 0, MAX_MODELS_OFFSET) or 0
    return offset, query_int(params, "limit", 1, MAX_MODELS_PAGE)


def models_json(
    entries: list[ModelEntry], offset: int = 0, limit: int | None = None, path: str = "/api/v1/models"
) -> dict[str, Any]:
    """A page of the ``/models`` list (the catalog is small and held in memory), with the link
    to the next page while one is left."""
    end = len(entries) if limit is None else offset + limit
    return {
        "data": [model_json(entry) for entry in entries[offset:end]],
        "total_count": len(entries),
        "links": {"next": f"{path}?offset={end}&limit={limit}" if end < len(entries) else None},
    }
