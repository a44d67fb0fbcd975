"""The inference routes on the wire: chat and text completions, Responses, Messages, embeddings.

Requests name the fields genledger reads; a chat request's other options are passed on or
ignored, as OpenAI-compatible servers do (``additionalProperties`` stays open), while
``/completions``, ``/responses``, ``/messages`` and ``/embeddings`` refuse a field they do not
know with a 400 naming it. Answers are open objects: the keys listed are always there.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from genledger.api.embeddings_wire import MAX_DIMENSIONS, MAX_INPUTS
from genledger.api.schemas._base import Closed, Open
from genledger.api.wire import (
    MAX_FALLBACK_MODELS,
    MAX_METADATA_KEY,
    MAX_METADATA_PAIRS,
    MAX_METADATA_VALUE,
    MAX_SESSION_ID,
    MAX_TOKENS,
)

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


Slug = Annotated[str, Field(min_length=1)]
MetadataKey = Annotated[str, Field(min_length=1, max_length=MAX_METADATA_KEY)]
MetadataValue = Annotated[str, Field(max_length=MAX_METADATA_VALUE)]
SortBy = Literal["price", "throughput", "latency"]


class Sort(Closed):
    by: SortBy | None = None
    partition: Literal["model", "none"] | None = None


class ProviderPreferences(Closed):
    """OpenRouter's `provider` object; a field genledger does not honour is a 400 naming it."""

    order: list[Slug] | None = None
    only: list[Slug] | None = None
    ignore: list[Slug] | None = None
    allow_fallbacks: bool | None = None
    sort: SortBy | Sort | None = None
    max_price: dict[str, float | str | None] | None = Field(
        default=None, description="USD per million tokens"
    )
    require_parameters: bool | None = None


class _Routing(Open):
    """What every inference request may say about routing and the record."""

    model: str = Field(min_length=1, description="A model slug of `/models`.")
    models: list[Slug] | None = Field(default=None, max_length=MAX_FALLBACK_MODELS, description="Fallbacks.")
    provider: ProviderPreferences | None = None
    user: str | None = None
    session_id: str | None = Field(default=None, min_length=1, max_length=MAX_SESSION_ID)
    metadata: dict[MetadataKey, MetadataValue] | None = Field(default=None, max_length=MAX_METADATA_PAIRS)


class ChatMessage(Open):
    role: Role
    content: str | list[Any] | None = None


class ChatRequest(_Routing):
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    tools: list[Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None


class Usage(Open):
    """OpenAI's usage, with OpenRouter's `cost` (USD)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: float
    is_byok: bool


class ChatChoice(Open):
    index: int
    message: dict[str, Any]
    finish_reason: str | None


class ChatCompletion(Open):
    """A `chat.completion`; its `id` is the generation's id (`GET /generation?id=`)."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    provider: str | None
    choices: list[ChatChoice]
    usage: Usage | None = None


class CompletionRequest(_Routing):
    model_config = ConfigDict(extra="forbid")

    prompt: str | list[str] = Field(description="A string (or an array of one).", max_length=1)
    stream: bool | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None


class TextChoice(Open):
    index: int
    text: str
    finish_reason: str | None


class TextCompletion(Open):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[TextChoice]
    usage: Usage | None = None


class ResponsesRequest(_Routing):
    model_config = ConfigDict(extra="forbid")

    input: Annotated[str, Field(min_length=1)] | Annotated[list[dict[str, Any]], Field(min_length=1)]
    instructions: str | None = None
    stream: bool | None = None
    max_output_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    temperature: float | None = None
    top_p: float | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None


class ResponseObject(Open):
    """OpenAI's `response` object; `id` is the generation's id."""

    id: str
    object: Literal["response"]
    created_at: int
    status: str
    model: str
    output: list[dict[str, Any]]
    output_text: str
    usage: dict[str, Any] | None


class AnthropicMessage(Open):
    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class MessagesRequest(Open):
    """Anthropic's Messages request (the key may come as `x-api-key`)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    models: list[Slug] | None = Field(default=None, max_length=MAX_FALLBACK_MODELS)
    provider: ProviderPreferences | None = None
    session_id: str | None = Field(default=None, min_length=1, max_length=MAX_SESSION_ID)
    max_tokens: int = Field(ge=1, le=MAX_TOKENS)
    messages: list[AnthropicMessage] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    stream: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class Message(Open):
    """Anthropic's `message`; `id` is the generation's id."""

    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[dict[str, Any]]
    stop_reason: str | None
    usage: dict[str, Any]


Token = Annotated[int, Field(ge=0)]


class EmbeddingsRequest(_Routing):
    model_config = ConfigDict(extra="forbid")

    input: (
        Annotated[str, Field(min_length=1)]
        | Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1, max_length=MAX_INPUTS)]
        | Annotated[list[Token], Field(min_length=1, max_length=MAX_INPUTS)]
        | Annotated[
            list[Annotated[list[Token], Field(min_length=1)]], Field(min_length=1, max_length=MAX_INPUTS)
        ]
    ) = Field(description="A string, strings, a token array or token arrays.")
    dimensions: int | None = Field(default=None, ge=1, le=MAX_DIMENSIONS)
    encoding_format: Literal["float", "base64"] | None = None
    input_type: str | None = None


class Embedding(Open):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str


class EmbeddingsUsage(Open):
    prompt_tokens: int
    total_tokens: int
    cost: float
    is_byok: bool


class Embeddings(Open):
    object: Literal["list"]
    id: str
    model: str
    provider: str | None
    data: list[Embedding]
    usage: EmbeddingsUsage


class ServerSentEvent(Open):
    """One event of a streamed answer (`text/event-stream`). `data` is a chunk of the API
    imitated, as JSON text (OpenAI's `chat.completion.chunk` or `text_completion`, Responses'
    and Anthropic's typed events, a chunk with `error` when the stream fails midway), and
    `[DONE]` last on OpenAI's formats."""

    data: str
    event: str | None = None
