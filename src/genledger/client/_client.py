"""``Client`` and ``AsyncClient``: the policy half lives in ``_base``, these add I/O only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Self, TypeVar

import httpx
import pydantic

from ._activity import ActivityResource, AsyncActivityResource
from ._base import BaseClient, RequestSpec
from ._credits import AsyncCreditsResource, CreditsResource
from ._generations import AsyncGenerationsResource, GenerationsResource
from ._key import AsyncKeyResource, KeyResource
from ._retry import RetryPolicy
from ._types import DEFAULT_MAX_RETRIES, NOT_GIVEN, NotGiven, TimeoutTypes

__all__ = ["AsyncClient", "Client"]

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)


class Client(BaseClient):
    """Synchronous client of the genledger (and OpenRouter) Generations API.

    Usage::

        with Client(api_key="sk-...") as client:
            generation = client.generations.get_generation(id="gen-...")

    Args:
        api_key: the bearer token; falls back to ``GENLEDGER_API_KEY``. Without either,
            construction raises :class:`~genledger.client.errors.MissingAPIKeyError`.
        base_url: the API root; falls back to ``GENLEDGER_BASE_URL``, then
            ``http://127.0.0.1:8080/api/v1``. ``https://openrouter.ai/api/v1`` works too.
        timeout: per-request timeout (seconds or ``httpx.Timeout``; ``None`` disables it).
            Defaults to the injected ``http_client``'s timeout, else 60 s (5 s to connect).
        max_retries: retries after the first attempt for retryable failures (default 2).
        default_headers: extra headers sent with every request. They may replace
            ``User-Agent`` and ``Accept``, but not ``Authorization`` (from ``api_key``) or
            the per-call ``X-Request-ID``.
        http_client: an ``httpx.Client`` to send through (proxies, transports, tests). The
            client never closes an injected ``http_client``; it closes only one it created.
        retry_policy: backoff tuning; see :class:`~genledger.client.RetryPolicy`.
        sleep: how to wait between attempts and polls (default ``time.sleep``).

    Resources: :attr:`generations`, :attr:`key`, :attr:`credits`, :attr:`activity`.
    """

    generations: GenerationsResource
    """``GET /generation`` and ``GET /generations``: ``get_generation``, ``wait`` and ``list``."""
    key: KeyResource
    """``GET /key``: limits and usage of the current API key."""
    credits: CreditsResource
    """``GET /credits``: the owner's credits and total usage."""
    activity: ActivityResource
    """``GET /activity``: usage totals per day and endpoint."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | httpx.URL | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int = DEFAULT_MAX_RETRIES,
        default_headers: Mapping[str, str] | None = None,
        http_client: httpx.Client | None = None,
        retry_policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            default_headers=default_headers,
            retry_policy=retry_policy,
            http_client_timeout=http_client.timeout if http_client is not None else None,
        )
        self._owns_http_client = http_client is None
        self._http_client = http_client if http_client is not None else httpx.Client(follow_redirects=True)
        self._sleep = sleep
        self.generations = GenerationsResource(self)
        self.key = KeyResource(self)
        self.credits = CreditsResource(self)
        self.activity = ActivityResource(self)

    def _request(self, spec: RequestSpec[ModelT]) -> ModelT:
        """Send ``spec`` with retries and return its validated ``data``."""
        max_retries = self._max_retries_for(spec)
        request_id = self._new_request_id()
        retries_taken = 0
        while True:
            request = self._build_request(self._http_client, spec, request_id)
            outcome: httpx.Response | httpx.RequestError
            try:
                outcome = self._http_client.send(request)
            except httpx.RequestError as exc:
                outcome = exc
            delay = self._retry_delay(retries_taken=retries_taken, max_retries=max_retries, outcome=outcome)
            if delay is None:
                if isinstance(outcome, httpx.RequestError):
                    raise self._connection_error(outcome, request) from outcome
                return self._parse_response(spec, outcome)
            if isinstance(outcome, httpx.Response):
                outcome.close()
            self._sleep(delay)
            retries_taken += 1

    @property
    def is_closed(self) -> bool:
        """Whether the underlying ``httpx.Client`` is closed."""
        return self._http_client.is_closed

    def close(self) -> None:
        """Close the ``httpx.Client`` this client created; an injected one is left open."""
        if self._owns_http_client:
            self._http_client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient(BaseClient):
    """Asynchronous twin of :class:`Client`: same arguments, awaitable calls.

    Usage::

        async with AsyncClient(api_key="sk-...") as client:
            generation = await client.generations.get_generation(id="gen-...")

    ``http_client`` is an ``httpx.AsyncClient`` and ``sleep`` a coroutine function (default
    ``asyncio.sleep``); everything else is as documented on :class:`Client`.
    """

    generations: AsyncGenerationsResource
    """``GET /generation`` and ``GET /generations``: ``get_generation``, ``wait`` and ``list``."""
    key: AsyncKeyResource
    """``GET /key``: limits and usage of the current API key."""
    credits: AsyncCreditsResource
    """``GET /credits``: the owner's credits and total usage."""
    activity: AsyncActivityResource
    """``GET /activity``: usage totals per day and endpoint."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | httpx.URL | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int = DEFAULT_MAX_RETRIES,
        default_headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
        retry_policy: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            default_headers=default_headers,
            retry_policy=retry_policy,
            http_client_timeout=http_client.timeout if http_client is not None else None,
        )
        self._owns_http_client = http_client is None
        self._http_client = (
            http_client if http_client is not None else httpx.AsyncClient(follow_redirects=True)
        )
        self._sleep = sleep
        self.generations = AsyncGenerationsResource(self)
        self.key = AsyncKeyResource(self)
        self.credits = AsyncCreditsResource(self)
        self.activity = AsyncActivityResource(self)

    async def _request(self, spec: RequestSpec[ModelT]) -> ModelT:
        """Send ``spec`` with retries and return its validated ``data``."""
        max_retries = self._max_retries_for(spec)
        request_id = self._new_request_id()
        retries_taken = 0
        while True:
            request = self._build_request(self._http_client, spec, request_id)
            outcome: httpx.Response | httpx.RequestError
            try:
                outcome = await self._http_client.send(request)
            except httpx.RequestError as exc:
                outcome = exc
            delay = self._retry_delay(retries_taken=retries_taken, max_retries=max_retries, outcome=outcome)
            if delay is None:
                if isinstance(outcome, httpx.RequestError):
                    raise self._connection_error(outcome, request) from outcome
                return self._parse_response(spec, outcome)
            if isinstance(outcome, httpx.Response):
                await outcome.aclose()
            await self._sleep(delay)
            retries_taken += 1

    @property
    def is_closed(self) -> bool:
        """Whether the underlying ``httpx.AsyncClient`` is closed."""
        return self._http_client.is_closed

    async def aclose(self) -> None:
        """Close the ``httpx.AsyncClient`` this client created; an injected one is left open."""
        if self._owns_http_client:
            await self._http_client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
