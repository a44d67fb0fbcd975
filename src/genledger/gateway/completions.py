"""Chat completions: admit, call the provider, price the usage, record the generation.

The record is committed before the caller gets the answer's last byte (the body of a
non-streamed answer; ``[DONE]`` of a stream), so fetching it right after never 404s.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

from genledger.core import pricing
from genledger.core.chat import ChatRequest
from genledger.core.failures import RETRYABLE_KINDS, FailureKind, UpstreamFailure
from genledger.core.generation import Generation, ProviderAttempt
from genledger.core.ids import new_generation_id
from genledger.core.keys import KeyRecord
from genledger.core.money import to_usd
from genledger.core.usage import Usage
from genledger.errors import BadGateway, GatewayError, from_upstream
from genledger.gateway.admission import Admission
from genledger.gateway.breakers import Breakers
from genledger.gateway.catalog import Catalog, ModelEntry
from genledger.gateway.routing import Candidate, plan
from genledger.ledger.generations import GenerationStore
from genledger.metrics import Metrics
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


@dataclass(slots=True)
class _Call:
    """One admitted request on its way through the provider endpoints that may serve it."""

    key: KeyRecord
    request: ChatRequest
    context: RequestContext
    candidates: list[Candidate]
    reserved: int
    generation_id: str = field(default_factory=new_generation_id)
    started: float = field(default_factory=time.perf_counter)
    attempts: list[ProviderAttempt] = field(default_factory=list)
    served: Candidate | None = None
    served_started: float = 0.0
    first_token_ms: float | None = None

    @property
    def entry(self) -> ModelEntry:
        assert self.served is not None
        return self.served.entry

    @property
    def provider(self) -> Provider:
        assert self.served is not None
        return self.served.provider

    def upstream(self, candidate: Candidate) -> UpstreamCall:
        return UpstreamCall(
            self.request, candidate.endpoint.upstream_model, candidate.entry.max_output_tokens
        )

    def generation(
        self,
        *,
        usage: Usage | None,
        upstream_id: str | None,
        finish_reason: str | None,
        native_finish_reason: str | None,
        streamed: bool,
        cancelled: bool = False,
        attempt_status: int = 200,
        data_region: str,
    ) -> Generation:
        cost = pricing.cost(usage, self.entry.price) if usage is not None else None
        served = ProviderAttempt(
            status=attempt_status,
            provider_name=self.provider.display_name,
            latency_ms=_ms_since(self.served_started),
            upstream_id=upstream_id,
        )
        return Generation(
            id=self.generation_id,
            key_id=self.key.id,
            created_at=datetime.now(UTC),
            model=self.entry.slug,
            upstream_id=upstream_id,
            provider_name=self.provider.display_name,
            total_cost=cost.total if cost else 0,
            cache_discount=cost.cache_discount if cost else None,
            usage=cost.total if cost else 0,
            streamed=streamed,
            cancelled=cancelled,
            latency_ms=self.first_token_ms if streamed else _ms_since(self.context.received_at),
            generation_time_ms=_ms_since(self.served_started),
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
            origin=self.context.http_referer or "",
            http_referer=self.context.http_referer,
            user_agent=self.context.user_agent,
            external_user=self.request.user,
            app_title=self.context.app_title,
            data_region=data_region,
            request_id=self.context.request_id,
            provider_responses=(*self.attempts, served),
        )


# Failures that count against an endpoint's health; a 429 means busy, not broken.
_BREAKER_KINDS = RETRYABLE_KINDS - {FailureKind.RATE_LIMITED}
T = TypeVar("T")


class CompletionService:
    def __init__(
        self,
        catalog: Catalog,
        providers: dict[str, Provider],
        generations: GenerationStore,
        admission: Admission,
        breakers: Breakers,
        metrics: Metrics,
        *,
        total_timeout: float,
        data_region: str = "global",
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self._catalog = catalog
        self._providers = providers
        self._generations = generations
        self.admission = admission
        self._breakers = breakers
        self._metrics = metrics
        self._total_timeout = total_timeout
        self._data_region = data_region
        self._spawn = spawn

    async def _admit(self, key: KeyRecord, request: ChatRequest, context: RequestContext) -> _Call:
        candidates = plan(request, self._catalog, self._providers)
        entries = list({id(c.entry): c.entry for c in candidates}.values())
        reserved = await self.admission.admit(key, request, entries)
        return _Call(key, request, context, candidates, reserved)

    async def _first_success(self, call: _Call, start: Callable[[Candidate], Awaitable[T]]) -> T:
        """Try the candidates in order until one answers; raise the caller-facing error if none.

        Endpoints whose circuit is open are skipped; a non-retryable failure (the request
        itself is bad) stops the search, and so does the total deadline.
        """
        failures: list[UpstreamFailure] = []
        deadline = call.started + self._total_timeout
        for candidate in call.candidates:
            endpoint = candidate.endpoint.key
            if not self._breakers.allow(endpoint):
                continue
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                failures.append(self._out_of_time(candidate))
                break
            call.served_started = time.perf_counter()
            try:
                async with asyncio.timeout(remaining):
                    result = await start(candidate)
            except TimeoutError:
                failure = self._out_of_time(candidate)
            except UpstreamFailure as exc:
                failure = exc
            else:
                self._breakers.succeeded(endpoint)
                self._metrics.attempt(
                    candidate.provider.display_name, "ok", time.perf_counter() - call.served_started
                )
                call.served = candidate
                return result
            self._metrics.attempt(
                candidate.provider.display_name, failure.kind.value, time.perf_counter() - call.served_started
            )
            call.attempts.append(
                ProviderAttempt(
                    status=failure.upstream_status or failure.status,
                    provider_name=candidate.provider.display_name,
                    latency_ms=_ms_since(call.served_started),
                )
            )
            if failure.kind in _BREAKER_KINDS:
                self._breakers.failed(endpoint)
            failures.append(failure)
            if failure.kind not in RETRYABLE_KINDS:
                break
        raise self._exhausted(call, failures)

    def _out_of_time(self, candidate: Candidate) -> UpstreamFailure:
        return UpstreamFailure(
            FailureKind.TIMEOUT,
            f"no answer within the total timeout of {self._total_timeout:g}s",
            provider_name=candidate.provider.display_name,
            raw="timeout",
        )

    def _exhausted(self, call: _Call, failures: list[UpstreamFailure]) -> GatewayError:
        if not failures:
            wait = min(self._breakers.retry_after(c.endpoint.key) for c in call.candidates)
            return BadGateway(
                f"Every provider endpoint for {call.request.model} is failing; retry in {math.ceil(wait)}s",
                metadata={"provider_name": call.candidates[0].provider.display_name, "raw": "circuit open"},
                headers={"Retry-After": str(max(math.ceil(wait), 1))},
            )
        if all(f.kind is FailureKind.RATE_LIMITED for f in failures):
            waits = [f.retry_after for f in failures if f.retry_after is not None]
            last = failures[-1]
            last.retry_after = min(waits) if waits else None
            return from_upstream(last)
        return from_upstream(failures[-1])

    async def _record(self, call: _Call, generation: Generation) -> None:
        """Commit the generation, settle the reservation, count its tokens.

        If the commit fails nothing was charged, so the reservation is released.
        """
        started = time.perf_counter()
        try:
            await self._generations.record(generation, reserved=call.reserved)
        except Exception:
            await self.admission.release(call.key, call.reserved)
            raise
        self._metrics.recorded(generation, time.perf_counter() - started)
        tokens = (generation.tokens_prompt or 0) + (generation.tokens_completion or 0)
        if tokens:
            await self.admission.used_tokens(call.key, tokens)

    async def complete(self, key: KeyRecord, request: ChatRequest, context: RequestContext) -> dict[str, Any]:
        """The ``chat.completion`` body for the caller, after its generation is committed."""
        call = await self._admit(key, request, context)
        try:
            completion = await self._first_success(call, lambda c: c.provider.complete(call.upstream(c)))
        except BaseException:
            await self.admission.release(key, call.reserved)
            raise
        generation = call.generation(
            usage=completion.usage,
            upstream_id=completion.upstream_id,
            finish_reason=completion.finish_reason,
            native_finish_reason=completion.native_finish_reason,
            streamed=False,
            data_region=self._data_region,
        )
        await self._record(call, generation)
        body = completion.body
        body["id"] = generation.id
        body["model"] = call.entry.slug
        body["provider"] = call.provider.display_name
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
        call = await self._admit(key, request, context)

        async def open_stream(
            candidate: Candidate,
        ) -> tuple[ChatStream, AsyncIterator[dict[str, Any]], dict[str, Any]]:
            stream = await candidate.provider.stream(call.upstream(candidate))
            try:
                chunks = aiter(stream)
                return stream, chunks, await anext(chunks)
            except StopAsyncIteration:
                await stream.aclose()
                raise UpstreamFailure(
                    FailureKind.INVALID_RESPONSE,
                    "the provider sent an empty stream",
                    provider_name=candidate.provider.display_name,
                ) from None
            except BaseException:
                await stream.aclose()
                raise

        try:
            stream, chunks, first = await self._first_success(call, open_stream)
        except BaseException:
            await self.admission.release(key, call.reserved)
            raise
        call.first_token_ms = _ms_since(context.received_at)
        return self._relay(call, stream, chunks, first)

    def _stream_generation(
        self, call: _Call, stream: ChatStream, failure: UpstreamFailure | None, *, cancelled: bool = False
    ) -> Generation:
        return call.generation(
            usage=stream.usage,
            upstream_id=stream.upstream_id,
            finish_reason="error" if failure else stream.finish_reason,
            native_finish_reason="error" if failure else stream.native_finish_reason,
            streamed=True,
            cancelled=cancelled,
            attempt_status=failure.status if failure else 200,
            data_region=self._data_region,
        )

    async def _relay(
        self, call: _Call, stream: ChatStream, chunks: AsyncIterator[dict[str, Any]], first: dict[str, Any]
    ) -> AsyncIterator[bytes]:
        frames = _Frames(call)
        failure: UpstreamFailure | None = None
        finished = False
        try:
            yield frames.chunk(first)
            try:
                async for chunk in chunks:
                    yield frames.chunk(chunk)
            except UpstreamFailure as exc:
                failure = exc
            finished = True
        finally:
            if not finished:
                # The caller went away: stop the upstream and record what is known, in the
                # background, since this task is being torn down.
                self._spawn(self._record_cancelled(call, stream))
        generation = self._stream_generation(call, stream, failure)
        try:
            await self._record(call, generation)
        except Exception:
            # Too late for a status: say so in the stream, without internals.
            log.exception("recording a streamed generation failed")
            yield frames.error(500, "Internal Server Error", None)
            yield SSE_DONE
            return
        if failure is not None:
            metadata = {"provider_name": failure.provider_name, "raw": failure.raw}
            yield frames.error(failure.status, failure.message, metadata)
        yield frames.usage(generation, stream.usage)
        yield SSE_DONE

    async def _record_cancelled(self, call: _Call, stream: ChatStream) -> None:
        try:
            await stream.aclose()
        except Exception:
            log.warning("closing a cancelled upstream stream failed", exc_info=True)
        await self._record(call, self._stream_generation(call, stream, None, cancelled=True))


class _Frames:
    """Server-sent events for the caller: upstream chunks under our id, slug and provider."""

    __slots__ = ("_base", "_created")

    def __init__(self, call: _Call) -> None:
        self._created = int(time.time())
        self._base = {
            "id": call.generation_id,
            "model": call.entry.slug,
            "provider": call.provider.display_name,
        }

    @staticmethod
    def _frame(chunk: dict[str, Any]) -> bytes:
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        chunk.update(self._base)
        chunk.pop("usage", None)
        return self._frame(chunk)

    def _own(self) -> dict[str, Any]:
        return {"object": "chat.completion.chunk", "created": self._created, **self._base}

    def error(self, status: int, message: str, metadata: dict[str, Any] | None) -> bytes:
        chunk = self._own()
        chunk["error"] = {"code": status, "message": message}
        if metadata is not None:
            chunk["error"]["metadata"] = metadata
        chunk["choices"] = [
            {"index": 0, "delta": {"content": ""}, "finish_reason": "error", "native_finish_reason": "error"}
        ]
        return self._frame(chunk)

    def usage(self, generation: Generation, usage: Usage | None) -> bytes:
        chunk = self._own()
        chunk["choices"] = []
        chunk["usage"] = usage_json(usage or Usage(), generation.total_cost)
        return self._frame(chunk)
