"""Which endpoints a request may use, in which order: the model's own, then fallback models,
filtered and ordered by the request's provider preferences."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from genledger.core.chat import ChatRequest, ProviderPreferences
from genledger.errors import BadRequest
from genledger.gateway.catalog import Catalog, Endpoint, ModelEntry
from genledger.providers.base import Provider


@dataclass(frozen=True, slots=True)
class Candidate:
    """One way to serve the request: a model, one of its endpoints, and that endpoint's provider."""

    entry: ModelEntry
    endpoint: Endpoint
    provider: Provider


def _names(provider_key: str, provider: Provider) -> set[str]:
    return {provider_key.lower(), provider.display_name.lower()}


def _matches(names: set[str], wanted: tuple[str, ...]) -> bool:
    return any(name.lower() in names for name in wanted)


def _endpoints(
    entry: ModelEntry, providers: Mapping[str, Provider], prefs: ProviderPreferences
) -> list[Endpoint]:
    endpoints = list(entry.endpoints)
    names = {e: _names(e.provider, providers[e.provider]) for e in endpoints}
    if prefs.only is not None:
        endpoints = [e for e in endpoints if _matches(names[e], prefs.only)]
    if prefs.ignore:
        endpoints = [e for e in endpoints if not _matches(names[e], prefs.ignore)]
    if prefs.order:
        rank = {name.lower(): index for index, name in enumerate(prefs.order)}

        def position(endpoint: Endpoint) -> int:
            return min((rank[n] for n in names[endpoint] if n in rank), default=len(rank))

        endpoints.sort(key=position)  # stable: the rest keep the configured order
        if not prefs.allow_fallbacks:
            endpoints = [e for e in endpoints if _matches(names[e], prefs.order)]
    elif not prefs.allow_fallbacks:
        endpoints = endpoints[:1]
    return endpoints


def plan(request: ChatRequest, catalog: Catalog, providers: Mapping[str, Provider]) -> list[Candidate]:
    """Every candidate, best first. 400 for an unknown model or when preferences leave none."""
    slugs = [request.model, *(m for m in request.fallback_models if m != request.model)]
    candidates = []
    for slug in dict.fromkeys(slugs):
        entry = catalog.resolve(slug)
        for endpoint in _endpoints(entry, providers, request.provider):
            candidates.append(Candidate(entry, endpoint, providers[endpoint.provider]))
    if not candidates:
        raise BadRequest(
            "No provider endpoint is left for this request after its provider preferences",
            metadata={"model": request.model},
        )
    return candidates
