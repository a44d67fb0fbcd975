"""Chat completions: route, call the provider, price the usage, record the generation.

The record is committed before the caller gets the answer's last byte (the body of a
non-streamed answer; ``[DONE]`` of a stream), so fetching it right after never 404s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from genledger.core import pricing
from genledger.core.chat import ChatRequest
from genledger.core.failures import FailureKind, UpstreamFailure
from genledger.core.generation import Generation, ProviderAttempt
from genledger.core.ids import new_generation_id
from genledger.core.money import to_usd
from genledger.core.usage import Usage
from genledger.errors import from_upstream
from genledger.gateway.catalog import Catalog, ModelEntry
from genledger.ledger.store import GenerationStore, KeyRecord
from genledger.providers.base import ChatStream, Provider, UpstreamCall

log = logging.getLogger("genledger.completions")

SSE_DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What the HTTP edge knows about the caller, for the record."""

    received_at: float  # time.perf_counter() when the request arrived
    http_referer: str | None = None
    user_agent: str | None = None
    app_title: str | None = None
    request_id: str | None = None


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


def usage_json(usage: Usage, cost_pico: int) -> dict[str, Any]:
    """An OpenAI ``usage`` object with OpenRouter's ``cost`` (USD)."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "cost": to_usd(cost_pico),
        "is_byok": False,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


class CompletionService:
    def __init__(
        self,
        catalog: Catalog,
        providers: dict[str, Provider],
        generations: GenerationStore,
        *,
        data_region: str = "global",
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self._catalog = catalog
        self._providers = providers
        self._generations = generations
        self._data_region = data_region
        self._spawn = spawn

    def _route(self, request: ChatRequest) -> tuple[ModelEntry, Provider, UpstreamCall]:
        entry = self._catalog.resolve(request.model)
        return entry, self._providers[entry.provider], UpstreamCall(request, entry.upstream_model)

    def _generation(
        self,
        generation_id: str,
        key: KeyRecord,
        entry: ModelEntry,
        provider: Provider,
        request: ChatRequest,
        context: RequestContext,
        *,
        usage: Usage | None,
        upstream_id: str | None,
        finish_reason: str | None,
        native_finish_reason: str | None,
        streamed: bool,
        latency_ms: float,
        generation_time_ms: float,
        attempt_status: int = 200,
    ) -> Generation:
        cost = pricing.cost(usage, entry.price) if usage is not None else pricing.Cost(0, 0)
        return Generation(
            id=generation_id,
            key_id=key.id,
            created_at=datetime.now(UTC),
            model=entry.slug,
            upstream_id=upstream_id,
            provider_name=provider.display_name,
            total_cost=cost.total,
            cache_discount=cost.cache_discount if usage is not None else None,
            usage=cost.total,
            streamed=streamed,
            cancelled=False,
            latency_ms=latency_ms,
            generation_time_ms=generation_time_ms,
            finish_reason=finish_reason,
            native_finish_reason=native_finish_reason,
            tokens_prompt=usage.prompt_tokens if usage else None,
            tokens_completion=usage.completion_tokens if usage else None,
            native_tokens_prompt=usage.prompt_tokens if usage else None,
            native_tokens_completion=usage.completion_tokens if usage else None,
            native_tokens_reasoning=usage.reasoning_tokens if usage else None,
            native_tokens_cached=usage.cached_tokens if usage else None,
            native_tokens_cache_write=usage.cache_write_tokens if usage else None,
            native_tokens_completion_images=usage.completion_image_tokens if usage else None,
            origin=context.http_referer or "",
            http_referer=context.http_referer,
            user_agent=context.user_agent,
            external_user=request.user,
            app_title=context.app_title,
            data_region=self._data_region,
            request_id=context.request_id,
            provider_responses=(
                ProviderAttempt(
                    status=attempt_status,
                    provider_name=provider.display_name,
                    latency_ms=generation_time_ms,
                    upstream_id=upstream_id,
                ),
            ),
        )

    async def complete(self, key: KeyRecord, request: ChatRequest, context: RequestContext) -> dict[str, Any]:
        """The ``chat.completion`` body for the caller, after its generation is committed."""
        entry, provider, call = self._route(request)
        started = time.perf_counter()
        try:
            completion = await provider.complete(call)
        except UpstreamFailure as failure:
            raise from_upstream(failure) from None
        generation = self._generation(
            new_generation_id(),
            key,
            entry,
            provider,
            request,
            context,
            usage=completion.usage,
            upstream_id=completion.upstream_id,
            finish_reason=completion.finish_reason,
            native_finish_reason=completion.native_finish_reason,
            streamed=False,
            latency_ms=_ms_since(context.received_at),
            generation_time_ms=_ms_since(started),
        )
        await self._generations.record(generation)
        body = completion.body
        body["id"] = generation.id
        body["model"] = entry.slug
        body["provider"] = provider.display_name
        if completion.usage is not None:
            body["usage"] = usage_json(completion.usage, generation.total_cost)
        return body

    async def stream(
        self, key: KeyRecord, request: ChatRequest, context: RequestContext
    ) -> AsyncIterator[bytes]:
        """Start the upstream stream; failures before its first chunk raise with their status.

        Returns the server-sent events for the caller. Once iteration has begun, failures
        end the stream with an error chunk instead.
        """
        entry, provider, call = self._route(request)
        started = time.perf_counter()
        stream: ChatStream | None = None
        try:
            stream = await provider.stream(call)
            chunks = aiter(stream)
            first = await anext(chunks)
        except (UpstreamFailure, StopAsyncIteration) as exc:
            if stream is not None:
                await stream.aclose()
            if isinstance(exc, StopAsyncIteration):
                raise from_upstream(
                    UpstreamFailure(
                        FailureKind.INVALID_RESPONSE,
                        "the provider sent an empty stream",
                        provider_name=provider.display_name,
                    )
                ) from None
            raise from_upstream(exc) from None
        relay = _Relay(new_generation_id(), entry, provider.display_name, context, started)
        relay.first_token_ms = _ms_since(context.received_at)
        return self._relay(key, request, entry, provider, stream, chunks, first, relay)

    async def _relay(
        self,
        key: KeyRecord,
        request: ChatRequest,
        entry: ModelEntry,
        provider: Provider,
        stream: ChatStream,
        chunks: AsyncIterator[dict[str, Any]],
        first: dict[str, Any],
        relay: _Relay,
    ) -> AsyncIterator[bytes]:
        failure: UpstreamFailure | None = None
        finished = False
        try:
            yield relay.encode(first)
            try:
                async for chunk in chunks:
                    yield relay.encode(chunk)
            except UpstreamFailure as exc:
                failure = exc
            finished = True
        finally:
            if not finished:
                # The caller went away: stop the upstream and record what is known, in the
                # background, since this task is being torn down.
                self._spawn(self._record_cancelled(key, request, entry, provider, stream, relay))
        generation = self._stream_generation(key, request, entry, provider, stream, relay, failure)
        await self._generations.record(generation)
        if failure is not None:
            yield relay.error_chunk(failure)
        yield relay.usage_chunk(generation, stream.usage)
        yield SSE_DONE

    def _stream_generation(
        self,
        key: KeyRecord,
        request: ChatRequest,
        entry: ModelEntry,
        provider: Provider,
        stream: ChatStream,
        relay: _Relay,
        failure: UpstreamFailure | None,
    ) -> Generation:
        return self._generation(
            relay.generation_id,
            key,
            entry,
            provider,
            request,
            relay.context,
            usage=stream.usage,
            upstream_id=stream.upstream_id,
            finish_reason="error" if failure else stream.finish_reason,
            native_finish_reason="error" if failure else stream.native_finish_reason,
            streamed=True,
            latency_ms=relay.first_token_ms,
            generation_time_ms=_ms_since(relay.started),
            attempt_status=failure.status if failure else 200,
        )

    async def _record_cancelled(
        self,
        key: KeyRecord,
        request: ChatRequest,
        entry: ModelEntry,
        provider: Provider,
        stream: ChatStream,
        relay: _Relay,
    ) -> None:
        try:
            await stream.aclose()
        except Exception:
            log.warning("closing a cancelled upstream stream failed", exc_info=True)
        generation = self._stream_generation(key, request, entry, provider, stream, relay, None)
        await self._generations.record(replace(generation, cancelled=True))


class _Relay:
    """Rewrites upstream chunks for the caller: our generation id, slug and provider."""

    __slots__ = ("context", "created", "entry", "first_token_ms", "generation_id", "provider_name", "started")

    def __init__(
        self,
        generation_id: str,
        entry: ModelEntry,
        provider_name: str,
        context: RequestContext,
        started: float,
    ) -> None:
        self.generation_id = generation_id
        self.entry = entry
        self.provider_name = provider_name
        self.context = context
        self.started = started
        self.created = int(time.time())
        self.first_token_ms = 0.0

    def _frame(self, chunk: dict[str, Any]) -> bytes:
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def encode(self, chunk: dict[str, Any]) -> bytes:
        chunk["id"] = self.generation_id
        chunk["model"] = self.entry.slug
        chunk["provider"] = self.provider_name
        chunk.pop("usage", None)
        return self._frame(chunk)

    def _base(self) -> dict[str, Any]:
        return {
            "id": self.generation_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.entry.slug,
            "provider": self.provider_name,
        }

    def error_chunk(self, failure: UpstreamFailure) -> bytes:
        chunk = self._base()
        chunk["error"] = {
            "code": failure.status,
            "message": failure.message,
            "metadata": {"provider_name": failure.provider_name, "raw": failure.raw},
        }
        chunk["choices"] = [
            {"index": 0, "delta": {"content": ""}, "finish_reason": "error", "native_finish_reason": "error"}
        ]
        return self._frame(chunk)

    def usage_chunk(self, generation: Generation, usage: Usage | None) -> bytes:
        chunk = self._base()
        chunk["choices"] = []
        chunk["usage"] = usage_json(usage or Usage(), generation.total_cost)
        return self._frame(chunk)
