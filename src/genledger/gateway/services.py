"""Everything a running gateway holds, built from settings at start-up and closed at shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any

from genledger.config import Settings
from genledger.core.idempotency import MAX_STORED_BYTES
from genledger.core.money import usd_to_pico
from genledger.core.prices import PriceVersion
from genledger.core.stores import GenerationStore, IdempotencyStore, KeyStore, PriceStore, StatementStore
from genledger.gateway.admission import Admission
from genledger.gateway.auth import Authenticator
from genledger.gateway.breakers import Breakers
from genledger.gateway.catalog import Catalog
from genledger.gateway.completions import CompletionService
from genledger.gateway.keys import KeyManager
from genledger.gateway.reads import LedgerReader
from genledger.ledger import Ledger
from genledger.limits import RateLimiter
from genledger.limits.ratelimit import MemoryRateLimiter
from genledger.metrics import Metrics, OpenCircuits
from genledger.providers import Provider, build_provider

log = logging.getLogger("genledger")


class Services:
    """The gateway's state: handed to the routes, never kept in module globals.

    Built on the storage protocols, so tests can hand in-memory stores; :meth:`start`
    opens the real ledger. ``close_storage`` is awaited last by :meth:`aclose`.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        keys: KeyStore,
        generations: GenerationStore,
        providers: dict[str, Provider],
        limiter: RateLimiter,
        close_storage: Callable[[], Awaitable[None]] | None = None,
        price_versions: Mapping[str, PriceVersion] | None = None,
        statements: StatementStore | None = None,
        idempotency: IdempotencyStore | None = None,
        idempotency_max_bytes: int = MAX_STORED_BYTES,
    ) -> None:
        self.settings = settings
        self.generations = generations
        self.providers = providers
        self.limiter = limiter
        self._close_storage = close_storage
        self.catalog = Catalog.from_settings(settings).versioned(price_versions or {})
        self.statements = statements
        self.idempotency = idempotency
        self.idempotency_max_bytes = idempotency_max_bytes
        self.auth = Authenticator(keys)
        self._background: set[asyncio.Task[None]] = set()
        self.metrics = Metrics(drift_tolerance_pico=usd_to_pico(settings.audit.cost_tolerance))
        self.breakers = Breakers(settings.routing.breaker_failures, settings.routing.breaker_cooldown)
        self.metrics.watch(OpenCircuits(self.breakers.open_endpoints))
        admission = Admission(keys, limiter, settings.limits)
        self.keys = KeyManager(keys, generations, self.auth, admission)
        self.reads = LedgerReader(keys, generations)
        self.completions = CompletionService(
            self.catalog,
            providers,
            generations,
            admission,
            self.breakers,
            self.metrics,
            total_timeout=settings.routing.total_timeout,
            data_region=settings.data_region,
            spawn=self.spawn,
        )

    @classmethod
    async def start(cls, settings: Settings) -> Services:

        ledger = await Ledger.open(settings.database_url)
        try:
            versions = await sync_prices(ledger.prices, settings)
        except BaseException:
            await ledger.close()
            raise
        providers = {name: build_provider(name, config) for name, config in settings.providers.items()}
        return cls(
            settings,
            keys=ledger.keys,
            generations=ledger.generations,
            providers=providers,
            limiter=build_limiter(settings),
            close_storage=ledger.close,
            price_versions=versions,
            statements=ledger.statements,
            idempotency=ledger.idempotency,
        )

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run work that must finish even though the request that started it is gone."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait for background work (records of cancelled streams)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def aclose(self) -> None:
        await self.drain()
        for provider in self.providers.values():
            await provider.aclose()
        await self.limiter.aclose()
        if self._close_storage is not None:
            await self._close_storage()


async def sync_prices(prices: PriceStore, settings: Settings) -> dict[str, PriceVersion]:
    """Each configured model's current price version: a new one for every changed price."""
    now = datetime.now(UTC)
    return {slug: await prices.sync(slug, model.price, now) for slug, model in settings.models.items()}


def build_limiter(settings: Settings) -> RateLimiter:
    if settings.limits.backend == "redis":
        from genledger.limits.redis import RedisRateLimiter

        return RedisRateLimiter(settings.limits.redis_url, on_failure=settings.limits.on_redis_failure)
    return MemoryRateLimiter()
