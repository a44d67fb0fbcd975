"""The catalog on the wire: ``/models`` (and its variants), a model's endpoints, ``/providers``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from genledger.api.schemas._base import Closed


class Pricing(Closed):
    """USD per token (per request, per image), as decimal strings."""

    prompt: str
    completion: str
    request: str
    image: str
    web_search: str
    internal_reasoning: str
    input_cache_read: str
    input_cache_write: str


class EndpointPricing(Closed):
    prompt: str
    completion: str
    request: str
    image: str
    internal_reasoning: str
    input_cache_read: str
    input_cache_write: str


class Architecture(Closed):
    modality: str
    input_modalities: list[str]
    output_modalities: list[str]
    tokenizer: str
    instruct_type: str | None


class TopProvider(Closed):
    context_length: int | None
    max_completion_tokens: int | None
    is_moderated: bool


class Links(Closed):
    details: str


class Model(Closed):
    """A model as OpenRouter's `/models` lists it, with the ledger's price version."""

    id: str
    canonical_slug: str
    name: str
    created: int
    description: str
    context_length: int | None
    architecture: Architecture
    pricing: Pricing
    top_provider: TopProvider
    per_request_limits: None
    default_parameters: None
    supported_voices: None
    links: Links
    supported_parameters: list[str]
    price_version: int | None
    price_effective_at: datetime | None


class NextLink(Closed):
    next: str | None


class ModelList(Closed):
    data: list[Model]
    total_count: int
    links: NextLink


class ModelResponse(Closed):
    data: Model


class Count(Closed):
    count: int


class CountResponse(Closed):
    data: Count


class Percentiles(Closed):
    p50: float
    p75: float
    p90: float
    p99: float


class ToolChoice(Closed):
    auto: bool
    none: bool
    required: bool
    function: bool


class Endpoint(Closed):
    name: str
    model_id: str
    model_name: str
    context_length: int
    pricing: EndpointPricing
    provider_name: str
    tag: str
    quantization: None
    max_completion_tokens: int | None
    max_prompt_tokens: None
    supported_parameters: list[str]
    status: int
    uptime_last_30m: None
    uptime_last_5m: None
    uptime_last_1d: None
    latency_last_30m: Percentiles | None
    throughput_last_30m: Percentiles | None
    supports_implicit_caching: bool
    supports_diarization: bool
    supports_tool_choice: ToolChoice
    native_tools: dict[str, Any]
    service_tier: None


class ModelEndpoints(Closed):
    id: str
    name: str
    created: int
    description: str
    architecture: Architecture
    endpoints: list[Endpoint]


class EndpointsResponse(Closed):
    data: ModelEndpoints


class Provider(Closed):
    name: str
    slug: str
    privacy_policy_url: None
    terms_of_service_url: None
    status_page_url: None


class ProviderList(Closed):
    data: list[Provider]
