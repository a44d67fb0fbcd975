"""One :class:`~genledger.api.operation.Operation` per route of ``api/app.py``: the contract.

The examples name the built-in demo provider's models (the default configuration's).

Statuses. Every operation lists each status it can answer with. ``500`` is listed
because the contract gives it a shape (the envelope, no internals), never because it is
expected: the fuzz test fails on any. ``502``, ``524`` and ``529`` are the upstream's
failures (unreachable or garbage, too slow, overloaded), answered only by the inference
routes, and ``503`` only while the gateway shuts down; the fuzz test accepts them there and
nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from genledger.api.key_wire import MAX_KEYS_OFFSET
from genledger.api.list_wire import EXPORT_FORMATS, MAX_PAGE
from genledger.api.operation import JSON, Header, Operation, Param, Reply
from genledger.api.schemas import catalog, generation, inference, keys, reports
from genledger.api.schemas.errors import AnthropicError, ErrorEnvelope
from genledger.api.wire import MAX_MODELS_OFFSET, MAX_MODELS_PAGE, MAX_SESSION_ID
from genledger.config import DEMO_EMBEDDING_MODEL, DEMO_MODEL
from genledger.core.idempotency import MAX_KEY_LENGTH

UPSTREAM_FAILURES = frozenset({502, 524, 529})
"""The statuses that say the upstream failed, not the gateway."""

_DIGITS = {"type": "string", "pattern": "^[0-9]+$"}
RETRY_AFTER = Header("Retry-After", "Seconds to wait before trying again.", _DIGITS)
RATE_LIMIT_HEADERS = (
    RETRY_AFTER,
    Header("X-RateLimit-Limit", "The key's limit per minute (requests or tokens).", _DIGITS),
    Header("X-RateLimit-Remaining", "What is left of it in this window.", _DIGITS),
    Header("X-RateLimit-Reset", "When the window resets, in epoch milliseconds.", _DIGITS),
)

_WHY = {
    400: "A missing or malformed parameter or field, or one the route does not take "
    "(`metadata.param` names it), or a NUL "
    "character (U+0000) anywhere in the URL or the body: genledger cannot store one.",
    401: "A missing, malformed, unknown, disabled or expired key.",
    402: "No credit left for the request: `metadata.limit_source` says which limit "
    "(`credits`, `key_limit`, `in_flight_budget`; with `Retry-After` for the last).",
    403: "The key may not do this (a management route, or a management key making completions).",
    404: "Nothing by that name visible to this key.",
    409: "A request with this `Idempotency-Key` is still running.",
    413: "The request body is larger than the gateway accepts.",
    422: "This `Idempotency-Key` was used with another body.",
    429: "Rate-limited: by this key's limits (with the `X-RateLimit-*` headers), by the upstream's, "
    "or, for an address with too many failed authentications, by the gateway (`Retry-After` only).",
    500: "An unexpected fault; the body never carries internals.",
    502: "The upstream provider failed, could not be reached or answered garbage "
    "(`metadata.provider_name`, `metadata.raw`).",
    503: "The gateway is shutting down.",
    524: "The upstream provider did not answer in time.",
    529: "The upstream provider is overloaded.",
}
_HEADERS: dict[int, tuple[Header, ...]] = {
    402: (RETRY_AFTER,),
    409: (RETRY_AFTER,),
    429: RATE_LIMIT_HEADERS,
    503: (RETRY_AFTER,),
    524: (RETRY_AFTER,),
    529: (RETRY_AFTER,),
}


def _errors(*statuses: int, model: type[BaseModel] = ErrorEnvelope) -> dict[int, Reply]:
    """The error replies: ``statuses``, and on every operation 400 (a NUL in the URL) and 500.

    Where a key is checked (401), too many failed authentications from one address are a 429.
    """
    also = {429} if 401 in statuses else set()
    every = sorted({400, *statuses, *also, 500})
    return {s: Reply(_WHY[s], {JSON: model}, _HEADERS.get(s, ())) for s in every}


def _ok(model: type[BaseModel], description: str = "OK", status: int = 200) -> dict[int, Reply]:
    return {status: Reply(description, {JSON: model})}


def _text(media_type: str, description: str) -> dict[int, Reply]:
    return {200: Reply(description, {media_type: None})}


# --- parameters

_ID = Param("id", {"type": "string", "minLength": 1, "maxLength": 200}, "The generation's id.", required=True)
_HASH = Param("hash", {"type": "string", "minLength": 1}, "The key's hash (64 hex digits).", True, "path")
_AUTHOR = Param("author", {"type": "string", "minLength": 1}, "The slug's first part.", True, "path")
_SLUG = Param("slug", {"type": "string", "minLength": 1}, "The slug's second part.", True, "path")
_KEY_HASH = Param(
    "api_key_hash",
    {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    "Another key's records (management keys only).",
)
_TEXT = {"type": "string", "minLength": 1, "maxLength": 1000}
_FILTERS = (
    Param("created_after", {"type": "string", "format": "date-time"}, "From this time (ISO 8601) on."),
    Param("created_before", {"type": "string", "format": "date-time"}, "Before this time (ISO 8601)."),
    Param("model", _TEXT, "This model slug only."),
    Param("provider_name", _TEXT, "This provider only."),
    Param("finish_reason", _TEXT, "This finish reason only."),
    Param("external_user", _TEXT, "This `user` only."),
    Param("session_id", _TEXT, "This session only."),
    Param("streamed", {"type": "boolean"}, "Streamed (or not) only."),
    Param("cancelled", {"type": "boolean"}, "Cancelled (or not) only."),
    Param(
        "drifted",
        {"type": "boolean"},
        "Only those whose upstream-reported cost differs from ours beyond `[audit] cost_tolerance` "
        "(or only those that do not).",
    ),
    Param("min_cost", {"type": "number", "minimum": 0, "maximum": 1_000_000}, "Costing at least this, USD."),
    _KEY_HASH,
)
_PAGE = (
    Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}, "Items per page (100)."),
    Param("cursor", {"type": "string"}, "The `next_cursor` of the page before."),
)
_GROUPING = r"(day|hour|model|provider|key|user|session|workspace|metadata\.[A-Za-z0-9_.:-]{1,64})"
GROUP_BY = rf"^{_GROUPING}(,{_GROUPING})*$"
_METADATA_NOTE = " Filter by request metadata with `metadata[<key>]=<value>` (repeatable)."

# --- the inference routes

_INFERENCE = (400, 401, 402, 403, 404, 413, 429, 502, 503, 524, 529)
_STREAM = "text/event-stream"
_ATTRIBUTION = (
    Param(
        "X-Session-Id",
        {"type": "string", "minLength": 1, "maxLength": MAX_SESSION_ID},
        "The session to record the generation under, when the body names none.",
        where="header",
    ),
    Param(
        "HTTP-Referer", {"type": "string"}, "The calling app's URL (the record's `origin`).", where="header"
    ),
    Param(
        "X-Title", {"type": "string"}, "The calling app's name (the record's `app_title`).", where="header"
    ),
)
IDEMPOTENCY_KEY = Param(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
    "A retry with the same key and body is answered with the first answer, not run again.",
    where="header",
)
REPLAYED = Header("Idempotent-Replayed", "`true` on an answer sent again for an `Idempotency-Key`.")


def _inference(
    operation_id: str,
    summary: str,
    body: type[BaseModel],
    answer: type[BaseModel],
    example: Mapping[str, Any],
    *,
    errors: type[BaseModel] = ErrorEnvelope,
    description: str = "",
    security: tuple[str, ...] = ("bearer",),
) -> Operation:
    """An inference operation: every one honours an ``Idempotency-Key`` (``api/idempotency.py``)."""
    stream = "With `stream: true`, server-sent events ending as the API they imitate ends them."
    idempotent = "An `Idempotency-Key` header makes a retry answer with the first answer."
    return Operation(
        operation_id,
        summary,
        "Inference",
        {
            200: Reply(
                f"The answer. {stream}", {JSON: answer, _STREAM: inference.ServerSentEvent}, (REPLAYED,)
            ),
            **_errors(*sorted((*_INFERENCE, 409, 422)), model=errors),
        },
        description=f"{description} {idempotent}".strip(),
        body=body,
        body_example=example,
        params=(IDEMPOTENCY_KEY, *_ATTRIBUTION),
        security=security,
    )


_HELLO = [{"role": "user", "content": "Hello"}]

CHAT = _inference(
    "createChatCompletion",
    "Create a chat completion (OpenAI's format, OpenRouter's extensions)",
    inference.ChatRequest,
    inference.ChatCompletion,
    {"model": DEMO_MODEL, "messages": _HELLO},
)
RESPONSES = _inference(
    "createResponse",
    "Create a response (OpenAI's Responses API; nothing is stored)",
    inference.ResponsesRequest,
    inference.ResponseObject,
    {"model": DEMO_MODEL, "input": "Hello"},
)
MESSAGES = _inference(
    "createMessage",
    "Create a message (Anthropic's Messages API, errors in Anthropic's shape)",
    inference.MessagesRequest,
    inference.Message,
    {"model": DEMO_MODEL, "max_tokens": 16, "messages": _HELLO},
    errors=AnthropicError,
    description="The key may also come as Anthropic's `x-api-key` header.",
    security=("bearer", "x-api-key"),
)
EMBEDDINGS = _inference(
    "createEmbeddings",
    "Create embeddings",
    inference.EmbeddingsRequest,
    inference.Embeddings,
    {"model": DEMO_EMBEDDING_MODEL, "input": "Hello"},
)
TEXT_COMPLETIONS = _inference(
    "createCompletion",
    "Create a text completion (OpenAI's legacy format)",
    inference.CompletionRequest,
    inference.TextCompletion,
    {"model": DEMO_MODEL, "prompt": "Hello"},
)

# --- the ledger

GET_GENERATION = Operation(
    "getGeneration",
    "Get request & usage metadata for a generation",
    "Generation history endpoints",
    {**_ok(generation.GenerationResponse), **_errors(400, 401, 404)},
    description="Another key's generation is answered exactly like a missing one (404).",
    params=(_ID,),
)
GET_CONTENT = Operation(
    "getGenerationContent",
    "Get a generation's stored prompt and answer",
    "Generation history endpoints",
    {**_ok(generation.ContentResponse), **_errors(400, 401, 404)},
    description="A 404 says why when nothing was stored (the key does not store content, or it was purged).",
    params=(_ID,),
)
FEEDBACK = Operation(
    "submitGenerationFeedback",
    "Give feedback on a generation",
    "Generation history endpoints",
    {**_ok(generation.SuccessResponse), **_errors(400, 401, 404, 413)},
    body=generation.FeedbackRequest,
)
LIST_GENERATIONS = Operation(
    "listGenerations",
    "List generations, newest first",
    "Generation history endpoints",
    {**_ok(generation.GenerationPage), **_errors(400, 401, 403, 404)},
    description="Pages by `next_cursor`." + _METADATA_NOTE,
    params=(*_FILTERS, *_PAGE),
    open_query=True,
)
EXPORT_GENERATIONS = Operation(
    "exportGenerations",
    "Export generations as NDJSON or CSV",
    "Generation history endpoints",
    {
        200: Reply(
            "One line (row) per generation, as a list item shows it.",
            {"application/x-ndjson": None, "text/csv": None},
        ),
        **_errors(400, 401, 403, 404),
    },
    description="The list's filters, without paging." + _METADATA_NOTE,
    params=(
        *_FILTERS,
        Param("format", {"type": "string", "enum": list(EXPORT_FORMATS)}, "ndjson (default) or csv."),
    ),
    open_query=True,
)
ACTIVITY = Operation(
    "getActivity",
    "Spending per day, model and provider (or per `group_by`)",
    "Analytics",
    {**_ok(reports.ActivityResponse), **_errors(400, 401, 403, 404)},
    params=(
        Param("date", {"type": "string", "format": "date"}, "One UTC day (default: the last 30)."),
        _KEY_HASH,
        Param(
            "group_by",
            {"type": "string", "pattern": GROUP_BY},
            "Comma-separated: day, hour, model, provider, key, user, session, metadata.<key>, workspace.",
        ),
        Param("workspace_id", {"type": "string", "enum": ["default"]}, "genledger's one workspace."),
    ),
)
STATEMENTS = Operation(
    "listStatements",
    "The sealed daily statements (management keys)",
    "Ledger",
    {**_ok(reports.StatementList), **_errors(401, 403, 404)},
    description="A 404 when this gateway keeps no statements.",
)

# --- the catalog

_MODEL_PATH = (_AUTHOR, _SLUG)
_MODELS_PAGE = (
    Param("offset", {"type": "integer", "minimum": 0, "maximum": MAX_MODELS_OFFSET}, "Models to skip (0)."),
    Param(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_MODELS_PAGE},
        "Models per page (default: all the rest); `links.next` is the next page.",
    ),
)
LIST_MODELS = Operation(
    "listModels", "List the models", "Models", {**_ok(catalog.ModelList), **_errors(401)}, params=_MODELS_PAGE
)
LIST_MODELS_FOR_USER = Operation(
    "listModelsUser",
    "List the models this key may use (all of them: genledger has no provider preferences)",
    "Models",
    {**_ok(catalog.ModelList), **_errors(401)},
    params=_MODELS_PAGE,
)
LIST_EMBEDDING_MODELS = Operation(
    "listEmbeddingsModels",
    "List the embedding models",
    "Models",
    {**_ok(catalog.ModelList), **_errors(401)},
    params=_MODELS_PAGE,
)
COUNT_MODELS = Operation(
    "countModels", "Count the models", "Models", {**_ok(catalog.CountResponse), **_errors(401)}
)
GET_MODEL = Operation(
    "getModel",
    "Get one model",
    "Models",
    {**_ok(catalog.ModelResponse), **_errors(401, 404)},
    params=_MODEL_PATH,
)
LIST_ENDPOINTS = Operation(
    "listEndpoints",
    "List a model's endpoints, in routing order, with their measured latency and throughput",
    "Endpoints",
    {**_ok(catalog.EndpointsResponse), **_errors(401, 404)},
    params=_MODEL_PATH,
)
LIST_PROVIDERS = Operation(
    "listProviders", "List the providers", "Providers", {**_ok(catalog.ProviderList), **_errors(401)}
)

# --- keys

CURRENT_KEY = Operation(
    "getCurrentKey",
    "The calling key: limits, usage, rate limits",
    "API Keys",
    {**_ok(keys.CurrentKeyResponse), **_errors(401, 404)},
)
CREDITS = Operation(
    "getCredits",
    "The calling key's credits and usage",
    "Credits",
    {**_ok(keys.CreditsResponse), **_errors(401, 404)},
)
LIST_KEYS = Operation(
    "listKeys",
    "List the keys (management keys)",
    "API Keys",
    {**_ok(keys.KeyList), **_errors(400, 401, 403)},
    params=(
        Param(
            "include_disabled",
            {"type": "string", "enum": ["true", "false"]},
            "Whether disabled keys are listed too (default false, as OpenRouter's).",
        ),
        Param(
            "offset",
            {"type": "integer", "minimum": 0, "maximum": MAX_KEYS_OFFSET},
            "How many keys to skip.",
        ),
    ),
)
CREATE_KEY = Operation(
    "createKey",
    "Create a key (management keys); its secret is shown this once",
    "API Keys",
    {**_ok(keys.CreatedKey, "Created", status=201), **_errors(400, 401, 403, 413)},
    body=keys.KeyCreate,
)
GET_KEY = Operation(
    "getKey",
    "Get a key (management keys)",
    "API Keys",
    {**_ok(keys.KeyResponse), **_errors(401, 403, 404)},
    params=(_HASH,),
)
UPDATE_KEY = Operation(
    "updateKey",
    "Change a key (management keys)",
    "API Keys",
    {**_ok(keys.KeyResponse), **_errors(400, 401, 403, 404, 413)},
    body=keys.KeyUpdate,
    params=(_HASH,),
)
DELETE_KEY = Operation(
    "deleteKey",
    "Delete a key (management keys)",
    "API Keys",
    {**_ok(keys.Deleted), **_errors(401, 403, 404)},
    params=(_HASH,),
)

# --- operations

HEALTH = Operation(
    "getHealth",
    "Whether the gateway answers",
    "Operations",
    {**_ok(reports.Health), **_errors()},
    security=(),
)
METRICS = Operation(
    "getMetrics",
    "Prometheus metrics (management keys)",
    "Operations",
    {**_text("text/plain", "The Prometheus text exposition."), **_errors(401, 403)},
)
OPENAPI = Operation(
    "getOpenAPI",
    "This document",
    "Operations",
    {200: Reply("The OpenAPI 3.1 document.", {JSON: None}), **_errors()},
    security=(),
)
DOCS = Operation(
    "getDocs",
    "This document, for people (Redoc)",
    "Operations",
    {**_text("text/html", "The page; its script and styles are served under /docs/static."), **_errors()},
    security=(),
)
