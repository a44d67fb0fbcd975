"""Everything a running gateway holds, built from settings at start-up and closed at shutdown."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from genledger.config import Settings
from genledger.core.idempotency import MAX_STORED_BYTES
from genledger.core.money import usd_to_pico
from genledger.core.prices import PriceVersion
from genledger.core.stores import (
    ContentStore,
    FeedbackStore,
    GenerationStore,
    IdempotencyStore,
    KeyStore,
    PriceStore,
    StatementStore,
)
from genledger.gateway.admission import Admission
from genledger.gateway.auth import Authenticator
from genledger.gateway.breakers import Breakers
from genledger.gateway.catalog import Catalog
from genledger.gateway.completions import CompletionService
from genledger.gateway.content import ContentService
from genledger.gateway.cookie_secret import SECRET_BYTES, cookie_secret
from genledger.gateway.keys import KeyManager
from genledger.gateway.leases import Leases
from genledger.gateway.overview import OverviewReader
from genledger.gateway.reads import LedgerReader
from genledger.ledger import Ledger
from genledger.limits import RateLimiter
from genledger.limits.ratelimit import MemoryRateLimiter
from genledger.metrics import Metrics
from genledger.providers import Provider, build_provider

log = logging.getLogger("genledger")


class Services:
    """The gateway's state: handed to the routes, never kept in module globals.

    Built on the storage protocols, so tests can hand in-memory stores; :meth:`start`
    opens the real ledger. ``close_storage`` is awaited last by :meth:`aclose`.
    ``dashboard_secret`` signs the dashboard's cookies (a random one when not given).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        keys: KeyStore,
        generations: GenerationStore,
        content: ContentStore,
        feedback: FeedbackStore,
        providers: dict[str, Provider],
        limiter: RateLimiter,
        close_storage: Callable[[], Awaitable[None]] | None = None,
        dashboard_secret: bytes | None = None,
        price_versions: Mapping[str, PriceVersion] | None = None,
        statements: StatementStore | None = None,
        idempotency: IdempotencyStore | None = None,
        idempotency_max_bytes: int = MAX_STORED_BYTES,
    ) -> None:
        self.settings = settings
        self.dashboard_secret = dashboard_secret or secrets.token_bytes(SECRET_BYTES)
        self.generations = generations
        self.providers = providers
        self.limiter = limiter
        self._close_storage = close_storage
        self.catalog = Catalog.from_settings(settings).versioned(price_versions or {})
        self.statements = statements
        self.idempotency = idempotency
        self.idempotency_max_bytes = idempotency_max_bytes
        self.idempotency_lease = timedelta(seconds=settings.longest_call)
        """How long a running idempotency claim holds: as long as its call may run."""
        self.auth = Authenticator(keys)
        self._background: set[asyncio.Task[None]] = set()
        self.metrics = Metrics(drift_tolerance_pico=usd_to_pico(settings.audit.cost_tolerance))
        self.breakers = Breakers(settings.routing.breaker_failures, settings.routing.breaker_cooldown)
        self.metrics.watch_circuits(self.breakers.open_endpoints)
        self.leases = Leases(keys, settings.limits.reservation_lease)
        admission = Admission(keys, limiter, settings.limits, self.leases)
        self.keys = KeyManager(keys, generations, self.auth, admission)
        self.reads = LedgerReader(
            keys, generations, feedback, drift_tolerance_pico=usd_to_pico(settings.audit.cost_tolerance)
        )
        self.overview = OverviewReader(keys, generations)
        self.content = ContentService(settings.content_storage.policy(), content, feedback, generations)
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
            content=self.content,
        )

    @classmethod
    async def start(cls, settings: Settings) -> Services:

        ledger = await Ledger.open(settings.database_url, rollup_grace=timedelta(seconds=settings.late_grace))
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
            content=ledger.content,
            feedback=ledger.feedback,
            providers=providers,
            limiter=build_limiter(settings),
            close_storage=ledger.close,
            dashboard_secret=cookie_secret(settings),
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

    def start_background(self) -> None:
        """Start what runs beside the requests: renewing this instance's reservation leases and
        giving back those of dead instances."""
        self.leases.start()

    def stop_requests(self) -> int:
        """End of a graceful shutdown's grace: stop the requests still waiting on a provider
        (streams end with an error chunk, recorded as cancelled; others get 503)."""
        stopped = self.completions.stopping.stop()
        if stopped:
            log.warning("shutdown: stopped %d request(s) still in flight", stopped)
        return stopped

    async def drain(self) -> None:
        """Wait for background work (records of cancelled streams)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def aclose(self) -> None:
        await self.drain()
        await self.leases.stop()  # gives back what this instance still holds
        for provider in self.providers.values():
            await provider.aclose()
        await self.limiter.aclose()
        if self._close_storage is not None:
            await self._close_storage()


async def sync_prices(prices: PriceStore, settings: Settings) -> dict[str, PriceVersion]:
    """Each configured model's current price version: a new one for every changed price."""
    now = datetime.now(UTC)
    return {
        slug: await prices.sync(slug, model.price, now, settings.endpoint_prices(slug))
        for slug, model in settings.models.items()
    }


def build_limiter(settings: Settings) -> RateLimiter:
    if settings.limits.backend == "redis":
        from genledger.limits.redis import RedisRateLimiter

        return RedisRateLimiter(settings.limits.redis_url, on_failure=settings.limits.on_redis_failure)
    return MemoryRateLimiter()
