"""Which endpoints a request may use, in which order: the model's own, then fallback models,
filtered and ordered by the request's provider preferences.

Filters, in order: the endpoints whose provider offers the operation (chat, embeddings,
prompt completions), ``provider.only`` / ``ignore``, ``require_parameters``, ``max_price``.
Then ``sort`` (or a ``:floor`` / ``:nitro`` model suffix), then ``order`` (named providers
first) and ``allow_fallbacks``. When the filters leave nothing, the error names the filter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from genledger.core.chat import (
    NO_PREFERENCES,
    SUFFIX_SORTS,
    MaxPrice,
    ProviderPreferences,
    RoutedRequest,
    SortBy,
)
from genledger.core.pricing import Price
from genledger.core.records import record
from genledger.errors import BadRequest, NotFound
from genledger.gateway.catalog import Catalog, Endpoint, ModelEntry
from genledger.gateway.measurements import Measurements
from genledger.providers.base import Embedder, PromptCompleter, Provider, supported_parameters

Operation = Literal["chat", "embeddings", "prompt"]
_KIND_OF: dict[Operation, str] = {"chat": "chat", "embeddings": "embeddings", "prompt": "chat"}
_OPERATION_NAMES: dict[Operation, str] = {
    "chat": "chat completions",
    "embeddings": "embeddings",
    "prompt": "prompt completions",
}


@record
class Candidate:
    """One way to serve the request: a model, one of its endpoints, and that endpoint's provider."""

    entry: ModelEntry
    endpoint: Endpoint
    provider: Provider

    @property
    def price(self) -> Price:
        return self.entry.price_of(self.endpoint)

    @property
    def max_output_tokens(self) -> int | None:
        return self.entry.max_output_tokens


def offers(provider: Provider, operation: Operation) -> bool:
    """Whether ``provider`` can serve ``operation`` at all."""
    if operation == "embeddings":
        return isinstance(provider, Embedder)
    if operation == "prompt":
        return isinstance(provider, PromptCompleter)
    return True


def _names(provider_key: str, provider: Provider) -> set[str]:
    return {provider_key.lower(), provider.display_name.lower()}


def _matches(names: set[str], wanted: tuple[str, ...]) -> bool:
    return any(name.lower() in names for name in wanted)


def over_max_price(price: Price, cap: MaxPrice) -> list[str]:
    """The prices of ``price`` above ``cap``, by name.

    genledger charges nothing per request, image or audio: those caps only exclude at zero.
    """
    over = []
    if cap.prompt is not None and price.prompt > cap.prompt:
        over.append("prompt")
    if cap.completion is not None and price.completion > cap.completion:
        over.append("completion")
    if cap.request is not None and cap.request < 0:
        over.append("request")
    if cap.image is not None and cap.image < 0:
        over.append("image")
    if cap.audio is not None and cap.audio < 0:
        over.append("audio")
    return over


def sort_key(
    by: SortBy, measurements: Measurements | None
) -> Callable[[Candidate], tuple[float | Decimal, ...]]:
    """Cheapest, fastest or quickest first; endpoints not measured yet go after the measured."""

    def key(candidate: Candidate) -> tuple[float | Decimal, ...]:
        if by == "price":
            return (candidate.price.prompt + candidate.price.completion, candidate.price.prompt)
        stats = None
        if measurements is not None:
            endpoint = candidate.endpoint.key
            stats = (
                measurements.latency_ms(endpoint)
                if by == "latency"
                else measurements.tokens_per_second(endpoint)
            )
        if stats is None:
            return (math.inf,)
        return (stats.p50,) if by == "latency" else (-stats.p50,)

    return key


@dataclass(slots=True)
class _Skipped:
    capability: int = 0
    parameters: set[str] | None = None
    price: list[dict[str, Any]] | None = None


def _filtered(
    entry: ModelEntry,
    providers: Mapping[str, Provider],
    request: RoutedRequest,
    operation: Operation,
    skipped: _Skipped,
) -> list[Candidate]:
    prefs = request.provider
    candidates = []
    for endpoint in entry.endpoints:
        provider = providers[endpoint.provider]
        if not offers(provider, operation):
            skipped.capability += 1
            continue
        if prefs.only is not None or prefs.ignore:  # (most requests name no provider)
            names = _names(endpoint.provider, provider)
            if prefs.only is not None and not _matches(names, prefs.only):
                continue
            if prefs.ignore and _matches(names, prefs.ignore):
                continue
        candidate = Candidate(entry, endpoint, provider)
        if prefs.require_parameters:
            supported = supported_parameters(provider)
            missing = request.parameters() - supported if supported is not None else frozenset()
            if missing:
                skipped.parameters = (skipped.parameters or set()) | missing
                continue
        if prefs.max_price is not None:
            over = over_max_price(candidate.price, prefs.max_price)
            if over:
                skipped.price = skipped.price or []
                skipped.price.append(
                    {
                        "model": entry.slug,
                        "provider": provider.display_name,
                        "prompt": str(candidate.price.prompt),
                        "completion": str(candidate.price.completion),
                    }
                )
                continue
        candidates.append(candidate)
    return candidates


def _ordered(candidates: list[Candidate], prefs: ProviderPreferences) -> list[Candidate]:
    if prefs.order:
        rank = {name.lower(): index for index, name in enumerate(prefs.order)}

        def position(candidate: Candidate) -> int:
            names = _names(candidate.endpoint.provider, candidate.provider)
            return min((rank[n] for n in names if n in rank), default=len(rank))

        candidates = sorted(candidates, key=position)  # stable: the rest keep their order
        if not prefs.allow_fallbacks:
            candidates = [
                c for c in candidates if _matches(_names(c.endpoint.provider, c.provider), prefs.order)
            ]
    elif not prefs.allow_fallbacks:
        candidates = candidates[:1]
    return candidates


def resolve(catalog: Catalog, slug: str) -> tuple[ModelEntry, SortBy | None]:
    """The entry for ``slug``, and the sort its ``:floor`` / ``:nitro`` suffix asks for."""
    entry = catalog.get(slug)
    if entry is None:
        for suffix, by in SUFFIX_SORTS.items():
            if slug.endswith(suffix) and (base := catalog.get(slug.removesuffix(suffix))) is not None:
                return base, by
    return catalog.resolve(slug), None


def plan(
    request: RoutedRequest,
    catalog: Catalog,
    providers: Mapping[str, Provider],
    *,
    operation: Operation = "chat",
    measurements: Measurements | None = None,
) -> list[Candidate]:
    """Every candidate, best first; a 400 or 404 naming the reason when there is none."""
    prefs = request.provider
    slugs = (
        dict.fromkeys((request.model, *request.fallback_models))
        if request.fallback_models
        else (request.model,)
    )
    candidates: list[Candidate] = []
    skipped = _Skipped()
    for slug in slugs:
        entry, suffix_sort = resolve(catalog, slug)
        if entry.kind != _KIND_OF[operation]:
            raise BadRequest(
                f"{entry.slug} is {'an embedding' if entry.kind == 'embeddings' else 'a chat'} model "
                f"and cannot serve {_OPERATION_NAMES[operation]}",
                metadata={"model": slug},
            )
        found = _filtered(entry, providers, request, operation, skipped)
        by = prefs.sort or suffix_sort
        if by is not None and prefs.sort_partition == "model":
            found.sort(key=sort_key(by, measurements))
        candidates += _ordered(found, prefs)
    if prefs.sort is not None and prefs.sort_partition == "none":
        candidates.sort(key=sort_key(prefs.sort, measurements))  # stable: ties keep their order
    if not candidates:
        raise _none_left(request, operation, skipped)
    return candidates


class Planner:
    """:func:`plan` for one catalog and set of providers, remembering the plan of each model a
    request names without routing preferences (most requests): that plan depends on nothing
    else, where ``provider`` preferences, fallback models and ``:nitro``-style sorts (by live
    measurements) make every request's own. The plans are shared: nobody changes one.
    """

    def __init__(
        self, catalog: Catalog, providers: Mapping[str, Provider], measurements: Measurements | None = None
    ) -> None:
        self._catalog = catalog
        self._providers = providers
        self._measurements = measurements
        self._plans: dict[tuple[str, Operation], list[Candidate]] = {}

    def plan(self, request: RoutedRequest, operation: Operation = "chat") -> list[Candidate]:
        plain = request.provider is NO_PREFERENCES and not request.fallback_models
        if plain:
            found = self._plans.get((request.model, operation))
            if found is not None:
                return found
        found = plan(
            request, self._catalog, self._providers, operation=operation, measurements=self._measurements
        )
        # Only a catalog slug's plan is kept (so at most one a model and operation), not a sort's.
        if plain and self._catalog.get(request.model) is not None:
            self._plans[(request.model, operation)] = found
        return found


def _none_left(request: RoutedRequest, operation: Operation, skipped: _Skipped) -> Exception:
    if skipped.price:
        return NotFound(
            "No endpoints found within the request's provider.max_price "
            "(USD per million tokens): every endpoint for this request costs more",
            metadata={"model": request.model, "skipped_endpoints": skipped.price},
        )
    if skipped.parameters:
        names = ", ".join(sorted(skipped.parameters))
        return NotFound(
            f"No endpoints found that support every parameter of this request ({names}); "
            "provider.require_parameters is true",
            metadata={"model": request.model, "unsupported_parameters": sorted(skipped.parameters)},
        )
    if skipped.capability:
        return NotFound(
            f"No endpoints found that support {_OPERATION_NAMES[operation]} for {request.model}",
            metadata={"model": request.model},
        )
    return BadRequest(
        "No provider endpoint is left for this request after its provider preferences",
        metadata={"model": request.model},
    )
