"""The model catalog: public slugs, the provider endpoints that serve each, and its prices."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from genledger.config import ModelConfig, Settings
from genledger.core.prices import PriceVersion
from genledger.core.pricing import Price
from genledger.errors import BadRequest


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One provider serving one upstream model."""

    provider: str
    upstream_model: str

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.upstream_model}"


@dataclass(frozen=True, slots=True)
class ModelEntry:
    slug: str
    name: str
    endpoints: tuple[Endpoint, ...]  # in the order they are tried
    price: Price
    context_length: int | None
    max_output_tokens: int | None
    version: PriceVersion | None = None  # the ledger's version of ``price`` (None: not versioned)

    @classmethod
    def from_config(cls, slug: str, config: ModelConfig) -> ModelEntry:
        endpoints = [Endpoint(config.provider, config.upstream_model or slug)]
        endpoints += [Endpoint(f.provider, f.upstream_model or slug) for f in config.fallbacks]
        return cls(
            slug=slug,
            name=config.name or slug,
            endpoints=tuple(endpoints),
            price=config.price,
            context_length=config.context_length,
            max_output_tokens=config.max_output_tokens,
        )


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

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self._entries.values())
