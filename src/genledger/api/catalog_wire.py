"""OpenRouter's catalog shapes: a model's endpoints, the providers, one model, the count.

Every figure shown is one genledger has: the catalog's prices and limits, the circuit
breakers' state, the latency and throughput this gateway measured. What it does not know
(uptime, quantization, provider policies) is null, or false for capabilities it lacks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from genledger.api.wire import architecture_json, model_json, per_token, supported_parameters
from genledger.gateway.breakers import Breakers
from genledger.gateway.catalog import Endpoint, ModelEntry
from genledger.gateway.measurements import Measurements, Percentiles
from genledger.providers.base import Provider
from genledger.providers.base import supported_parameters as provider_parameters

STATUS_OK = 0
STATUS_CIRCUIT_OPEN = -10
"""``status`` of an endpoint: 0 while its circuit is closed, -10 while it is open (skipped)."""


def _percentiles(stats: Percentiles | None) -> dict[str, float] | None:
    if stats is None:
        return None
    return {"p50": stats.p50, "p75": stats.p75, "p90": stats.p90, "p99": stats.p99}


def _endpoint_json(
    entry: ModelEntry,
    endpoint: Endpoint,
    provider: Provider,
    breakers: Breakers,
    measurements: Measurements,
) -> dict[str, Any]:
    price = entry.price_of(endpoint)
    params = supported_parameters(entry)
    honoured = provider_parameters(provider)
    if honoured is not None:
        params = [p for p in params if p in honoured or p in ("stream", "user", "encoding_format")]
    tool_choice = "tool_choice" in params
    return {
        "name": f"{provider.display_name} | {entry.slug}",
        "model_id": entry.slug,
        "model_name": entry.name,
        # Required by OpenRouter's schema; 0 when the catalog does not configure one.
        "context_length": entry.context_length or 0,
        "pricing": {
            "prompt": per_token(price.prompt),
            "completion": per_token(price.completion),
            "request": "0",
            "image": "0",
            "internal_reasoning": per_token(price.reasoning or price.completion),
            "input_cache_read": per_token(price.cached_prompt or price.prompt),
            "input_cache_write": per_token(price.cache_write or price.prompt),
        },
        "provider_name": provider.display_name,
        "tag": endpoint.provider,
        "quantization": None,
        "max_completion_tokens": entry.max_output_tokens,
        "max_prompt_tokens": None,
        "supported_parameters": params,
        "status": STATUS_CIRCUIT_OPEN if breakers.is_open(endpoint.key) else STATUS_OK,
        "uptime_last_30m": None,
        "uptime_last_5m": None,
        "uptime_last_1d": None,
        "latency_last_30m": _percentiles(measurements.latency_ms(endpoint.key)),
        "throughput_last_30m": _percentiles(measurements.tokens_per_second(endpoint.key)),
        "supports_implicit_caching": False,
        "supports_diarization": False,
        "supports_tool_choice": {
            "auto": tool_choice,
            "none": tool_choice,
            "required": tool_choice,
            "function": tool_choice,
        },
        "native_tools": {},
        "service_tier": None,
    }


def endpoints_json(
    entry: ModelEntry, providers: Mapping[str, Provider], breakers: Breakers, measurements: Measurements
) -> dict[str, Any]:
    """``GET /models/{author}/{slug}/endpoints``: the model and each endpoint, in routing order."""
    model = model_json(entry)
    return {
        "data": {
            "id": entry.slug,
            "name": entry.name,
            "created": model["created"],
            "description": model["description"],
            "architecture": architecture_json(entry),
            "endpoints": [
                _endpoint_json(entry, e, providers[e.provider], breakers, measurements)
                for e in entry.endpoints
            ],
        }
    }


def providers_json(providers: Mapping[str, Provider]) -> dict[str, Any]:
    """``GET /providers``: each configured provider; genledger knows none of their policy URLs."""
    return {
        "data": [
            {
                "name": provider.display_name,
                "slug": name,
                "privacy_policy_url": None,
                "terms_of_service_url": None,
                "status_page_url": None,
            }
            for name, provider in providers.items()
        ]
    }


def model_response_json(entry: ModelEntry) -> dict[str, Any]:
    """``GET /model/{author}/{slug}``: one model, as the list shows it."""
    return {"data": model_json(entry)}


def count_json(entries: Iterable[ModelEntry]) -> dict[str, Any]:
    """``GET /models/count``."""
    return {"data": {"count": sum(1 for _ in entries)}}
