"""The model catalog: public slugs, the provider endpoints that serve each, and its prices."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Literal

from genledger.config import ModelConfig, Settings
from genledger.core.prices import PriceVersion
from genledger.core.pricing import Price
from genledger.core.records import record
from genledger.errors import BadRequest


@record
class Endpoint:
    """One provider serving one upstream model; ``price`` None: the model's."""

    provider: str
    upstream_model: str
    price: Price | None = None

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.upstream_model}"


@record
class ModelEntry:
    slug: str
    name: str
    endpoints: tuple[Endpoint, ...]  # in the order they are tried
    price: Price
    context_length: int | None
    max_output_tokens: int | None
    kind: Literal["chat", "embeddings"] = "chat"
    version: PriceVersion | None = None  # the ledger's version of ``price`` (None: not versioned)

    @classmethod
    def from_config(cls, slug: str, config: ModelConfig) -> ModelEntry:
        price = config.price
        endpoints = [Endpoint(config.provider, config.upstream_model or slug)]
        for fallback in config.fallbacks:
            endpoints.append(
                Endpoint(fallback.provider, fallback.upstream_model or slug, fallback.price(price))
            )
        return cls(
            slug=slug,
            name=config.name or slug,
            endpoints=tuple(endpoints),
            price=price,
            context_length=config.context_length,
            max_output_tokens=config.max_output_tokens,
            kind=config.kind,
        )

    def price_of(self, endpoint: Endpoint) -> Price:
        """What ``endpoint`` charges for this model."""
        return endpoint.price if endpoint.price is not None else self.price


class Catalog:
    def __init__(self, entries: dict[str, ModelEntry]) -> None:
        self._entries = entries

    @classmethod
    def from_settings(cls, settings: Settings) -> Catalog:
        return cls({slug: ModelEntry.from_config(slug, model) for slug, model in settings.models.items()})

    def versioned(self, versions: Mapping[str, PriceVersion]) -> Catalog:
        """This catalog with each model's price version (the ledger's, for what it records)."""
        return Catalog(
            {
                slug: dataclasses.replace(entry, version=versions.get(slug))
                for slug, entry in self._entries.items()
            }
        )

    def resolve(self, slug: str) -> ModelEntry:
        """The entry for ``slug``; a 400 naming the model when there is none."""
        entry = self._entries.get(slug)
        if entry is None:
            raise BadRequest(f"{slug} is not a valid model ID", metadata={"model": slug})
        return entry

    def get(self, slug: str) -> ModelEntry | None:
        return self._entries.get(slug)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self._entries.values())
