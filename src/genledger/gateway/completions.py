"""Chat completions, prompt completions and embeddings: admit, call the provider, price the
usage, record the generation (its ``api_type`` says which API served it).

The record is committed before the caller gets the answer's last byte (the body of a
non-streamed answer; ``[DONE]`` of a stream), so fetching it right after never 404s.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from genledger.core import estimates, pricing
from genledger.core.chat import ChatRequest, Completion, RoutedRequest
from genledger.core.content import ContentError, GenerationContent
from genledger.core.deadlines import Deadlines
from genledger.core.embeddings import EmbeddingAnswer, EmbeddingRequest
from genledger.core.events import (
    Answer,
    Failed,
    Finish,
    Head,
    Identified,
    Outcome,
    ProviderEvent,
    ReasoningDelta,
    RefusalDelta,
    Relay,
    RelayEvent,
    Settled,
    TextDelta,
    ToolCallDelta,
    UsageReport,
)
from genledger.core.failures import ENDPOINT_FAILURE_KINDS, RETRYABLE_KINDS, FailureKind, UpstreamFailure
from genledger.core.generation import (
    MAX_NATIVE_FINISH_REASON,
    MAX_UPSTREAM_ID,
    Generation,
    ProviderAttempt,
    TokenCounts,
    estimated_counts,
    filled_counts,
    token_counts,
)
from genledger.core.ids import GenerationIds
from genledger.core.keys import KeyRecord
from genledger.core.prompt import PromptRequest
from genledger.core.read_batches import hold_to_the_end
from genledger.core.records import record
from genledger.core.request_summary import RequestSummary
from genledger.core.stores import GenerationStore
from genledger.core.usage import Usage
from genledger.errors import BadGateway, GatewayError, ServiceUnavailable, from_upstream
from genledger.gateway.admission import Admission
from genledger.gateway.breakers import Breakers
from genledger.gateway.catalog import Catalog, ModelEntry
from genledger.gateway.content import ContentService
from genledger.gateway.measurements import Measurements
from genledger.gateway.routing import Candidate, Operation, Planner
from genledger.gateway.stopping import Stopped, Stopping
from genledger.metrics import Metrics
from genledger.providers.base import (
    Embedder,
    EmbeddingCall,
    EventStream,
    PromptCall,
    PromptCompleter,
    Provider,
    UpstreamCall,
)

log = logging.getLogger("genledger.completions")


@record
class RequestContext:
    """What the HTTP edge knows about the caller, for the record."""

    received_at: float  # time.perf_counter() when the request arrived
    http_referer: str | None = None
    user_agent: str | None = None
    app_title: str | None = None
    request_id: str | None = None
    summary: RequestSummary | None = None  # the request log's, when its lines are on


def _ms_since(start: float) -> float:
    # Whole microseconds over 1000: the nearest float to the 3-decimal value, as round(x, 3)
    # gives, in a third of its time (it rounds through a decimal string; a request calls this
    # four times).
    return round((time.perf_counter() - start) * 1_000_000) / 1000


@dataclass(slots=True)
class _Tally:
    """What a stream has told so far: the gateway's view, kept as events pass."""

    upstream_id: str | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    # The first choice's text and reasoning, kept only when the content is to be stored, and
    # only up to ``room`` characters: content larger than that is not stored anyway, and an
    # upstream that streams without end must not fill the memory (both are dropped then).
    text: list[str] | None = None
    reasoning: list[str] | None = None
    room: int = 0
    # What was relayed of the completion, for an estimate if the stream is cut short: its
    # characters and its non-empty pieces, all choices together.
    relayed: int = 0
    pieces: int = 0

    @property
    def complete(self) -> bool:
        """Whether the provider told the end and its usage: the usage is then its final word."""
        return self.usage is not None and self.finish_reason is not None

    def keep(self, room: int) -> None:
        self.text, self.reasoning, self.room = [], [], room

    def _kept(self, kept: list[str], text: str) -> None:
        kept.append(text)
        self.room -= len(text)
        if self.room < 0:
            self.text = self.reasoning = None

    def _relayed(self, text: str) -> None:
        if text:
            self.relayed += len(text)
            self.pieces += 1

    def add(self, event: ProviderEvent) -> bool:
        """Take in ``event``; whether the caller should see it. (The events of every stream
        first, by class: this runs for each chunk.)"""
        kind = event.__class__
        if kind is TextDelta:
            text: str = event.text  # type: ignore[union-attr]
            if text:
                self.relayed += len(text)
                self.pieces += 1
                if self.text is not None and event.choice == 0:  # type: ignore[union-attr]
                    self._kept(self.text, text)
            return True
        if kind is UsageReport:
            self.usage = event.usage  # type: ignore[union-attr]
            return False
        if kind is Identified:
            self.upstream_id = event.upstream_id  # type: ignore[union-attr]
            return False
        if kind is Finish:
            if event.choice == 0:  # type: ignore[union-attr]
                self.finish_reason, self.native_finish_reason = event.reason, event.native  # type: ignore[union-attr]
            return True
        if isinstance(event, ReasoningDelta):
            self._relayed(event.text)
            if self.reasoning is not None and event.choice == 0:
                self._kept(self.reasoning, event.text)
        elif isinstance(event, RefusalDelta):
            self._relayed(event.text)
        elif isinstance(event, ToolCallDelta):
            self._relayed((event.name or "") + event.arguments)
        return True


@dataclass(slots=True)
class _Call:
    """One admitted request on its way through the provider endpoints that may serve it."""

    key: KeyRecord
    request: RoutedRequest
    context: RequestContext
    candidates: list[Candidate]
    reserved: int
    generation_id: str  # also the id of its reservation, if it holds one
    api_type: str = "completions"
    started: float = field(default_factory=time.perf_counter)
    attempts: list[ProviderAttempt] = field(default_factory=list)
    served: Candidate | None = None
    served_started: float = 0.0
    first_token_ms: float | None = None
    # The request's task, asked for once (a getpid() system call on Python 3.11) for what
    # waits in it: the shutdown watch and the total deadline.
    task: asyncio.Task[Any] | None = field(default_factory=asyncio.current_task)

    @property
    def entry(self) -> ModelEntry:
        assert self.served is not None
        return self.served.entry

    @property
    def provider(self) -> Provider:
        assert self.served is not None
        return self.served.provider

    def head(self) -> Head:
        return Head(self.generation_id, self.entry.slug, self.provider.display_name, int(time.time()))

    def upstream(self, candidate: Candidate) -> UpstreamCall:
        assert isinstance(self.request, ChatRequest)
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
        counts: TokenCounts | None = None,
    ) -> Generation:
        """The record; ``counts`` when the token attributes are not simply ``usage``'s.

        The upstream's id and finish reason are cut to what the ledger holds: whatever the
        upstream says, the generation it made is recorded.
        """
        assert self.served is not None
        if upstream_id is not None and len(upstream_id) > MAX_UPSTREAM_ID:
            upstream_id = upstream_id[:MAX_UPSTREAM_ID]
        if native_finish_reason is not None and len(native_finish_reason) > MAX_NATIVE_FINISH_REASON:
            native_finish_reason = native_finish_reason[:MAX_NATIVE_FINISH_REASON]
        cost = pricing.cost(usage, self.served.price) if usage is not None else None
        charge = cost.total if cost else 0
        served = ProviderAttempt(
            status=attempt_status,
            provider_name=self.provider.display_name,
            latency_ms=_ms_since(self.served_started),
            upstream_id=upstream_id,
        )
        return Generation(
            id=self.generation_id,
            key_id=self.key.id,
            # When the request arrived, not now: a stream is recorded when it ends, with the
            # time it began (the time its id carries; the rollup's and statements' grace
            # count on it), so a stream across midnight is the day it was asked for.
            created_at=datetime.fromtimestamp(
                time.time() - (time.perf_counter() - self.context.received_at), UTC
            ),
            model=self.entry.slug,
            api_type=self.api_type,
            upstream_id=upstream_id,
            provider_name=self.provider.display_name,
            total_cost_pico=charge,
            cache_discount_pico=cost.cache_discount if cost else None,
            charge_pico=charge,
            streamed=streamed,
            cancelled=cancelled,
            latency_ms=self.first_token_ms if streamed else _ms_since(self.context.received_at),
            generation_time_ms=_ms_since(self.served_started),
            finish_reason=finish_reason,
            native_finish_reason=native_finish_reason,
            **(token_counts(usage) if counts is None else counts),
            origin=self.context.http_referer or "",
            http_referer=self.context.http_referer,
            user_agent=self.context.user_agent,
            external_user=self.request.user,
            app_title=self.context.app_title,
            data_region=data_region,
            request_id=self.context.request_id,
            provider_responses=(*self.attempts, served),
            session_id=self.request.session_id,
            metadata=self.request.metadata,
            price_version=self.entry.version.version if self.entry.version else None,
            upstream_cost_pico=usage.upstream_cost_pico if usage is not None else None,
        )


# Failures that count against an endpoint's health; a 429 means busy, not broken.
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
        measurements: Measurements | None = None,
        content: ContentService | None = None,
        stopping: Stopping | None = None,
    ) -> None:
        self._generations = generations
        self.admission = admission
        self._breakers = breakers
        self._metrics = metrics
        self._total_timeout = total_timeout
        self._data_region = data_region
        self._spawn = spawn
        self.measurements = measurements if measurements is not None else Measurements()
        self._content = content
        self.stopping = stopping if stopping is not None else Stopping()
        self._deadlines = Deadlines()
        self._ids = GenerationIds()
        self._planner = Planner(catalog, providers, self.measurements)

    async def _admit(
        self,
        key: KeyRecord,
        request: ChatRequest | EmbeddingRequest | PromptRequest,
        context: RequestContext,
        *,
        operation: Operation = "chat",
        api_type: str = "completions",
    ) -> _Call:
        if context.summary is not None:
            context.summary.admitted(key, request.model)
        candidates = self._planner.plan(request, operation)
        generation_id = self._ids.new()
        reserved = await self.admission.admit(key, request, candidates, hold_id=generation_id)
        return _Call(key, request, context, candidates, reserved, generation_id, api_type)

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
                if not failures:  # else the last one tried says what became of the time
                    failures.append(self._out_of_time(candidate))
                break
            call.served_started = time.perf_counter()
            try:
                with self._deadlines.within(remaining, task=call.task):
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
                self.measurements.latency(endpoint, _ms_since(call.served_started))
                call.served = candidate
                if call.context.summary is not None:
                    call.context.summary.answering(
                        call.generation_id, candidate.provider.display_name, len(call.attempts) + 1
                    )
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
            if failure.kind in ENDPOINT_FAILURE_KINDS:
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
        summary = call.context.summary
        if summary is not None:
            summary.failed(len(call.attempts), failures[-1].provider_name if failures else None)
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
            await self._generations.record(generation, reserved=call.reserved > 0)
        except Exception as exc:
            # What the operator needs to put it right by hand: the provider answered (and bills).
            log.error(
                "generation %s of key %s (%s via %s, %d picodollars) was not recorded: %s",
                generation.id,
                generation.key_id,
                generation.model,
                generation.provider_name,
                generation.charge_pico,
                type(exc).__name__,
                exc_info=not isinstance(exc, GatewayError),
            )
            await self.admission.release(call.generation_id, call.reserved)
            raise
        self._metrics.recorded(generation, time.perf_counter() - started)
        if call.context.summary is not None:
            call.context.summary.recorded(generation)
        if generation.tokens_completion and generation.generation_time_ms and call.served is not None:
            self.measurements.throughput(
                call.served.endpoint.key,
                generation.tokens_completion / (generation.generation_time_ms / 1000),
            )
        if generation.tokens:
            await self.admission.used_tokens(call.key, generation.tokens)

    async def complete(self, key: KeyRecord, request: ChatRequest, context: RequestContext) -> Answer:
        """The whole answer, after its generation is committed."""
        call = await self._admit(key, request, context)
        return await self._answer(call, lambda c: c.provider.complete(call.upstream(c)))

    async def complete_prompt(
        self, key: KeyRecord, request: PromptRequest, context: RequestContext
    ) -> Answer:
        """A legacy prompt completion, whole, on the endpoints whose provider offers it."""
        call = await self._admit(key, request, context, operation="prompt")
        return await self._answer(
            call, lambda c: _prompt_completer(c).complete_prompt(_prompt_call(request, c))
        )

    async def embed(
        self, key: KeyRecord, request: EmbeddingRequest, context: RequestContext
    ) -> EmbeddingAnswer:
        """Embeddings, recorded with ``api_type`` "embeddings" and priced per input token."""
        call = await self._admit(key, request, context, operation="embeddings", api_type="embeddings")
        embeddings = await self._answered(
            call,
            self._first_success(
                call,
                lambda c: cast(Embedder, c.provider).embed(EmbeddingCall(request, c.endpoint.upstream_model)),
            ),
        )
        counts = None
        if embeddings.usage is None or not embeddings.usage.prompt_tokens:
            # The provider did not say (an embedding is all prompt): charged (and told) an estimate
            usage = Usage(prompt_tokens=estimates.prompt_tokens(request), completion_tokens=0)
            embeddings, counts = replace(embeddings, usage=usage), estimated_counts(usage, None)
        generation = call.generation(
            usage=embeddings.usage,
            counts=counts,
            upstream_id=embeddings.upstream_id,
            finish_reason=None,
            native_finish_reason=None,
            streamed=False,
            data_region=self._data_region,
        )
        await self._record(call, generation)
        return EmbeddingAnswer(
            call.generation_id,
            call.entry.slug,
            call.provider.display_name,
            embeddings,
            generation.total_cost_pico,
        )

    async def _answer(self, call: _Call, start: Callable[[Candidate], Awaitable[Completion]]) -> Answer:
        key = call.key
        completion = await self._answered(call, self._first_success(call, start))
        counts = None
        if completion.usage is None:  # the provider did not say: charged (and told) estimates
            usage = self._estimated(call, None, *estimates.answer_size(completion))
            completion, counts = replace(completion, usage=usage), estimated_counts(usage, None)
        elif not (completion.usage.prompt_tokens and completion.usage.completion_tokens):
            # It counted no prompt, or no completion: charged (and told) estimates of what it missed
            usage, counts = self._filled(call, completion.usage, *estimates.answer_size(completion))
            completion = replace(completion, usage=usage)
        generation = call.generation(
            usage=completion.usage,
            counts=counts,
            upstream_id=completion.upstream_id,
            finish_reason=completion.finish_reason,
            native_finish_reason=completion.native_finish_reason,
            streamed=False,
            data_region=self._data_region,
        )
        await self._record(call, generation)
        if self._content is not None and self._content.wants(key):
            first = completion.choices[0] if completion.choices else None
            await self._store_content(
                call, generation, first.content if first else None, first.reasoning if first else None
            )
        return Answer(call.head(), completion, generation.total_cost_pico)

    async def _store_content(
        self,
        call: _Call,
        generation: Generation,
        completion: str | None,
        reasoning: str | None,
        failure: UpstreamFailure | None = None,
    ) -> None:
        """Keep the prompt and answer (the caller's answer does not depend on it succeeding)."""
        assert self._content is not None
        error = None
        if failure is not None:
            error = ContentError(failure.status, failure.message, failure.provider_name, failure.raw)
        request = call.request
        if isinstance(request, ChatRequest):
            messages = tuple(request.messages)
        elif isinstance(request, PromptRequest):
            messages = ({"role": "user", "content": request.prompt},)
        else:  # embeddings keep no content
            return
        content = GenerationContent(
            generation_id=generation.id,
            key_id=generation.key_id,
            created_at=generation.created_at,
            messages=messages,
            completion=completion,
            reasoning=reasoning,
            error=error,
        )
        try:
            await self._content.record(content)
        except Exception as exc:
            # Never the exception's text: a database error quotes the statement's parameters.
            log.error("storing the content of generation %s failed: %s", generation.id, type(exc).__name__)

    async def stream(self, key: KeyRecord, request: ChatRequest, context: RequestContext) -> Relay:
        """Start the upstream stream; failures before its first event raise with their status.

        Once iteration of the relay's events has begun, failures end it with a
        :class:`Failed` event instead; every relay that runs to its end closes with
        :class:`Settled` once the generation is recorded.
        """
        call = await self._admit(key, request, context)
        return await self._stream(call, lambda c: c.provider.stream(call.upstream(c)))

    async def stream_prompt(self, key: KeyRecord, request: PromptRequest, context: RequestContext) -> Relay:
        """A legacy prompt completion, streamed, as :meth:`stream` streams chat."""
        call = await self._admit(key, request, context, operation="prompt")
        return await self._stream(
            call, lambda c: _prompt_completer(c).stream_prompt(_prompt_call(request, c))
        )

    async def _stream(self, call: _Call, start: Callable[[Candidate], Awaitable[EventStream]]) -> Relay:
        context = call.context

        async def open_stream(candidate: Candidate) -> tuple[EventStream, ProviderEvent]:
            stream = await start(candidate)
            try:
                return stream, await anext(stream)
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

        stream, first = await self._answered(call, self._first_success(call, open_stream))
        call.first_token_ms = _ms_since(context.received_at)
        outcome = Outcome()
        return Relay(call.head(), self._relay(call, stream, first, outcome), outcome)

    async def _answered(self, call: _Call, answer: Awaitable[T]) -> T:
        """The provider's answer; if there is none (a failure, a shutdown), the reservation is
        released and the error raised: 503 when the gateway stopped waiting (shutting down)."""
        try:
            with self.stopping.watch() as watch:
                return await watch.waiting(answer, call.task)
        except BaseException as exc:
            await self.admission.release(call.generation_id, call.reserved)
            if isinstance(exc, Stopped):
                raise ServiceUnavailable(
                    "The gateway is shutting down; retry the request", headers={"Retry-After": "1"}
                ) from None
            raise

    def _stream_generation(
        self,
        call: _Call,
        tally: _Tally,
        failure: UpstreamFailure | None,
        *,
        cancelled: bool = False,
        stopped: bool = False,
    ) -> Generation:
        """``stopped``: the gateway ended the stream (shutting down), with an error chunk the
        caller saw, so the record says ``error`` as the stream did.

        Estimates stand in for the usage of a stream cut short before its provider told it
        (by its caller, the shutdown, or the provider failing after it had relayed some of the
        answer, which it generated), and of one that ended without the provider telling it;
        a usage that counted no prompt, or no completion of what was relayed, has it estimated."""
        if failure is None:
            estimated = tally.usage is None or (cancelled and not tally.complete)
        else:
            estimated = tally.relayed > 0 and not tally.complete
        counts = None
        if estimated:
            counts = self._estimate(call, tally)
        elif tally.usage is not None and not (tally.usage.prompt_tokens and tally.usage.completion_tokens):
            tally.usage, counts = self._filled(call, tally.usage, tally.relayed, tally.pieces)
        return call.generation(
            usage=tally.usage,
            counts=counts,
            upstream_id=tally.upstream_id,
            finish_reason="error" if failure or stopped else tally.finish_reason,
            native_finish_reason="error" if failure or stopped else tally.native_finish_reason,
            streamed=True,
            cancelled=cancelled,
            attempt_status=failure.status if failure else 200,
            data_region=self._data_region,
        )

    def _estimate(self, call: _Call, tally: _Tally) -> TokenCounts:
        """A stream cut short before its provider told its usage is charged for estimates
        (:mod:`genledger.core.estimates`), not for nothing: they become ``tally.usage``, and the
        counts keep as native only what the provider did report."""
        reported = tally.usage
        tally.usage = self._estimated(call, reported, tally.relayed, tally.pieces)
        return estimated_counts(tally.usage, reported)

    def _filled(
        self, call: _Call, reported: Usage, characters: int, pieces: int
    ) -> tuple[Usage, TokenCounts]:
        """A report that counted no prompt (every generation has one), or no completion of an
        answer of ``characters`` in ``pieces``: what it missed estimated, as for an answer
        without usage; the rest as reported."""
        request = cast(ChatRequest | PromptRequest, call.request)
        most = self.admission.output_bound(request, call.entry)
        usage = estimates.filled(
            reported,
            estimates.prompt_tokens(request),
            estimates.completion_tokens(characters, pieces, most),
        )
        return usage, filled_counts(usage, reported)

    def _estimated(self, call: _Call, reported: Usage | None, characters: int, pieces: int) -> Usage:
        """The usage of an answer its provider did not (fully) tell: what it reported, and
        estimates of the prompt and of ``characters`` in ``pieces`` (:mod:`~genledger.core.estimates`)."""
        request = cast(ChatRequest | PromptRequest, call.request)
        return estimates.cut_short(
            reported,
            estimates.prompt_tokens(request),
            estimates.completion_tokens(characters, pieces, self.admission.output_bound(request, call.entry)),
        )

    async def _relay(
        self, call: _Call, stream: EventStream, first: ProviderEvent, outcome: Outcome
    ) -> AsyncGenerator[RelayEvent, None]:
        """The stream's events, then its end; ``outcome.failed`` is set before a :class:`Failed`."""
        tally = _Tally()
        storing = self._content is not None and self._content.wants(call.key)
        if storing:
            assert self._content is not None
            tally.keep(self._content.policy.max_bytes)
        failure: UpstreamFailure | None = None
        finished = stopped = ended = False
        try:
            with self.stopping.watch() as watch:
                if tally.add(first):
                    yield first  # type: ignore[misc]  # add() is True only for deltas
                # Only the waits on the provider may be interrupted by a shutdown; one that comes
                # while a chunk is written to the caller is seen once it is written. The task is
                # read at each wait: whoever iterates the relay may change between chunks.
                current_task = asyncio.current_task
                upstream_next = stream.__anext__
                try:
                    while not watch.stopped:
                        task = current_task()
                        assert task is not None
                        watch.arm(task)
                        try:
                            event = await upstream_next()
                        except StopAsyncIteration:
                            ended = True
                            break
                        except asyncio.CancelledError:
                            if not watch.taken_back(task):
                                raise
                            break
                        finally:
                            watch.disarm()
                        if tally.add(event):
                            yield event  # type: ignore[misc]
                    stopped = not ended
                except UpstreamFailure as exc:
                    failure = exc
            finished = True
        finally:
            if not finished:
                # The caller went away: stop the upstream and record what is known, in the
                # background, since this task is being torn down (the request's line waits).
                if call.context.summary is not None:
                    call.context.summary.recording()
                self._spawn(self._record_cancelled(call, stream, tally))
        if stopped:
            outcome.failed = True
            async for end in self._stopped(call, stream, tally):
                yield end
            return
        generation = self._stream_generation(call, tally, failure)
        try:
            await self._record(call, generation)
        except Exception as exc:
            # Too late for a status: say so in the stream, without internals.
            outcome.failed = True
            yield _unrecorded(exc)
            return
        if storing and tally.text is None:
            log.info("content of generation %s not stored: over content_storage.max_bytes", generation.id)
        elif storing:
            text = "".join(tally.text or ()) or None
            await self._store_content(call, generation, text, "".join(tally.reasoning or ()) or None, failure)
        hold_to_the_end()  # no wait from here on: the end of the answer goes out in one write
        if failure is not None:
            outcome.failed = True
            yield Failed(
                failure.status, failure.message, {"provider_name": failure.provider_name, "raw": failure.raw}
            )
        yield Settled(tally.usage, generation.total_cost_pico)

    async def _stopped(
        self, call: _Call, stream: EventStream, tally: _Tally
    ) -> AsyncGenerator[RelayEvent, None]:
        """The end of a stream the shutdown stopped: recorded as cancelled with what is known."""
        await self._close(stream)
        generation = self._stream_generation(call, tally, None, cancelled=True, stopped=True)
        try:
            await self._record(call, generation)
        except Exception as exc:
            yield _unrecorded(exc)
            return
        hold_to_the_end()
        yield Failed(503, "The gateway is shutting down; the answer ends here", {"raw": "shutdown"})
        yield Settled(tally.usage, generation.total_cost_pico)

    @staticmethod
    async def _close(stream: EventStream) -> None:
        try:
            await stream.aclose()
        except Exception:
            log.warning("closing a cancelled upstream stream failed", exc_info=True)

    async def _record_cancelled(self, call: _Call, stream: EventStream, tally: _Tally) -> None:
        try:
            await self._close(stream)
            await self._record(call, self._stream_generation(call, tally, None, cancelled=True))
        finally:
            if call.context.summary is not None:
                call.context.summary.settled()


def _prompt_completer(candidate: Candidate) -> PromptCompleter:
    return cast(PromptCompleter, candidate.provider)  # routing kept only the providers that offer it


def _prompt_call(request: PromptRequest, candidate: Candidate) -> PromptCall:
    return PromptCall(request, candidate.endpoint.upstream_model, candidate.entry.max_output_tokens)


def _unrecorded(exc: Exception) -> Failed:
    """The end of a stream whose record could not be written (``_record`` logged it): the
    ledger unreachable says so (503, retry); anything else is a bare 500, without internals."""
    if isinstance(exc, GatewayError):
        return Failed(exc.status, exc.message)
    return Failed(500, "Internal Server Error")
