"""The in-process tier: the completion service on in-memory stores and scripted providers.

No sockets, no uvicorn, no database: each test builds exactly the gateway it needs and
drives it directly (or through the ASGI app with httpx's ASGITransport).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest

from genledger.api import create_app
from genledger.config import LimitsConfig, load_settings
from genledger.core.chat import ChatRequest
from genledger.core.keys import KeyRecord
from genledger.gateway.admission import Admission
from genledger.gateway.breakers import Breakers
from genledger.gateway.catalog import Catalog
from genledger.gateway.completions import CompletionService, RequestContext
from genledger.gateway.services import Services
from genledger.limits.ratelimit import MemoryRateLimiter
from genledger.metrics import Metrics
from tests.inprocess.scripted import ScriptedEmbedder, ScriptedProvider
from tests.inprocess.stores import (
    MemoryGenerationStore,
    MemoryKeyStore,
    memory_services,
)

MODEL = "acme/chat"
OTHER_MODEL = "acme/other"
EMBED_MODEL = "acme/embed"  # embeddings on primary (1 USD/M input tokens), then secondary (0.5)
PLAIN_EMBED_MODEL = "acme/plain-embed"  # embeddings on a provider that does not offer them
PRICED_MODEL = "acme/priced"  # chat on primary at 3/4 USD per M, then secondary at 1/1
PROMPT_PRICE = Decimal("1")  # USD per million tokens: 1_000_000 picodollars per token
COMPLETION_PRICE = Decimal("2")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Gateway:
    """A completion service and everything it stands on, for one test."""

    service: CompletionService
    keys: MemoryKeyStore
    generations: MemoryGenerationStore
    primary: ScriptedProvider
    secondary: ScriptedProvider
    clock: Clock
    background: list[Coroutine[Any, Any, None]] = field(default_factory=list)
    plain: ScriptedProvider = field(default_factory=lambda: ScriptedProvider("plain", "Plain"))

    async def key(self, name: str = "alice", **kwargs: Any) -> KeyRecord:
        return (await self.keys.create(name, **kwargs))[0]

    async def fresh(self, key: KeyRecord) -> KeyRecord:
        found = await self.keys.find_by_id(key.id)
        assert found is not None
        return found

    async def run_background(self) -> None:
        """Run what the service spawned (records of cancelled streams), as the app would."""
        while self.background:
            await self.background.pop(0)


def request(model: str = MODEL, *, stream: bool = False, **kwargs: Any) -> ChatRequest:
    return ChatRequest(model=model, messages=({"role": "user", "content": "hi"},), stream=stream, **kwargs)


def context() -> RequestContext:
    import time

    return RequestContext(received_at=time.perf_counter())


BuildGateway = Callable[..., Awaitable[Gateway]]


@pytest.fixture
def build() -> BuildGateway:
    async def make(
        *,
        total_timeout: float = 30.0,
        breaker_failures: int = 3,
        breaker_cooldown: float = 10.0,
        **limits: Any,
    ) -> Gateway:
        settings = load_settings(
            None,
            providers={
                "primary": {"kind": "demo", "display_name": "Primary"},
                "secondary": {"kind": "demo", "display_name": "Secondary"},
                "plain": {"kind": "demo"},
            },
            models={
                MODEL: {
                    "provider": "primary",
                    "upstream_model": "up-chat",
                    "fallbacks": [{"provider": "secondary", "upstream_model": "up-chat-2"}],
                    "prompt_price": str(PROMPT_PRICE),
                    "completion_price": str(COMPLETION_PRICE),
                    "max_output_tokens": 100,
                },
                OTHER_MODEL: {
                    "provider": "secondary",
                    "prompt_price": "3",
                    "completion_price": "4",
                    "max_output_tokens": 100,
                },
                EMBED_MODEL: {
                    "provider": "primary",
                    "upstream_model": "up-embed",
                    "kind": "embeddings",
                    "fallbacks": [{"provider": "secondary", "prompt_price": "0.5"}],
                    "prompt_price": "1",
                    "completion_price": "0",
                },
                PLAIN_EMBED_MODEL: {
                    "provider": "plain",
                    "kind": "embeddings",
                    "prompt_price": "1",
                    "completion_price": "0",
                },
                PRICED_MODEL: {
                    "provider": "primary",
                    "fallbacks": [{"provider": "secondary", "prompt_price": "1", "completion_price": "1"}],
                    "prompt_price": "3",
                    "completion_price": "4",
                    "max_output_tokens": 100,
                },
            },
        )
        keys = MemoryKeyStore()
        generations = MemoryGenerationStore(keys)
        primary, secondary = (
            ScriptedEmbedder("primary", "Primary"),
            ScriptedEmbedder("secondary", "Secondary"),
        )
        clock = Clock()
        gateway = Gateway(None, keys, generations, primary, secondary, clock)  # type: ignore[arg-type]
        gateway.service = CompletionService(
            Catalog.from_settings(settings),
            {"primary": primary, "secondary": secondary, "plain": gateway.plain},
            generations,
            Admission(keys, MemoryRateLimiter(), LimitsConfig(**limits)),
            Breakers(breaker_failures, breaker_cooldown, clock=clock),
            Metrics(),
            total_timeout=total_timeout,
            spawn=gateway.background.append,
        )
        return gateway

    return make


@dataclass
class App:
    http: httpx.AsyncClient
    services: Services
    keys: MemoryKeyStore
    generations: MemoryGenerationStore
    secret: str
    admin: str
    asgi: Any

    def client(self, secret: str | None = None) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key=secret or self.secret,
            base_url="http://gateway/api/v1",
            http_client=self.http,
            max_retries=0,
        )

    def anthropic(self, secret: str | None = None) -> anthropic.AsyncAnthropic:
        """The official Anthropic client, its key in ``x-api-key`` as it sends it."""
        # The anthropic SDK runs on httpx2, the successor package; it takes the same app.
        transport = httpx2.ASGITransport(app=self.asgi)
        return anthropic.AsyncAnthropic(
            api_key=secret or self.secret,
            base_url="http://gateway/api",
            http_client=httpx2.AsyncClient(transport=transport, base_url="http://gateway"),
            max_retries=0,
        )


@pytest.fixture
async def app() -> AsyncIterator[App]:
    settings = load_settings(None)  # the embedded defaults: the demo provider and model
    keys = MemoryKeyStore()
    generations = MemoryGenerationStore(keys)
    services = memory_services(settings, keys, generations)
    _, secret = await keys.create("app", limit_pico=10**12)
    _, admin = await keys.create("admin", management=True)
    asgi = create_app(settings, services)
    transport = httpx.ASGITransport(app=asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield App(http, services, keys, generations, secret, admin, asgi)
    await services.aclose()
