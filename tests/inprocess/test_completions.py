"""Routing, fallbacks, breakers, reservations and stream endings, in process."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from genledger.core.chat import ChatRequest
from genledger.core.events import (
    Failed,
    Finish,
    ReasoningDelta,
    Settled,
    TextDelta,
    ToolCallDelta,
    UsageReport,
)
from genledger.core.failures import FailureKind
from genledger.core.usage import Usage
from genledger.errors import (
    BadGateway,
    BadRequest,
    GatewayError,
    PaymentRequired,
    TooManyRequests,
    UpstreamTimeout,
)
from tests.inprocess.conftest import MODEL, OTHER_MODEL, BuildGateway, context, request
from tests.inprocess.scripted import Script, answer

PER_PROMPT_TOKEN = 1_000_000  # picodollars, at 1 USD per million
PER_COMPLETION_TOKEN = 2_000_000


async def drain(relay) -> list:
    return [event async for event in relay.events]


async def test_a_whole_answer_is_recorded_priced_and_charged(build: BuildGateway):
    gw = await build()
    key = await gw.key(limit_pico=10**12)
    answer_ = await gw.service.complete(key, request(), context())
    assert (answer_.head.model, answer_.head.provider_name) == (MODEL, "Primary")
    assert answer_.completion.choices[0].content == "Hello there"
    cost = 10 * PER_PROMPT_TOKEN + 5 * PER_COMPLETION_TOKEN
    assert answer_.cost_pico == cost
    record = gw.generations.generations[answer_.head.generation_id]
    assert (record.charge_pico, record.total_cost_pico, record.streamed) == (cost, cost, False)
    assert (record.tokens_prompt, record.tokens_completion, record.upstream_id) == (10, 5, "up-1")
    assert [a.status for a in record.provider_responses] == [200]
    state = await gw.fresh(key)
    assert (state.usage_pico, state.reserved_pico) == (cost, 0)
    assert gw.primary.calls[0].upstream_model == "up-chat"


async def test_a_stream_relays_its_deltas_then_settles(build: BuildGateway):
    gw = await build()
    key = await gw.key()
    relay = await gw.service.stream(key, request(stream=True), context())
    events = await drain(relay)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hello", " there"]
    assert not any(isinstance(e, UsageReport) for e in events)  # the caller gets usage once, settled
    assert isinstance(events[-2], Finish) and events[-1] == Settled(Usage(10, 5), 20_000_000)
    record = gw.generations.generations[relay.head.generation_id]
    assert (record.streamed, record.cancelled, record.finish_reason) == (True, False, "stop")
    assert record.latency_ms is not None and record.upstream_id == "up-1"


async def test_a_failing_endpoint_falls_back_and_every_attempt_is_recorded(build: BuildGateway):
    gw = await build()
    gw.primary.then(Script(fail=gw.primary.failure(FailureKind.SERVER_ERROR, upstream_status=500)))
    key = await gw.key()
    answer_ = await gw.service.complete(key, request(), context())
    assert answer_.head.provider_name == "Secondary"
    record = gw.generations.generations[answer_.head.generation_id]
    assert [(a.status, a.provider_name) for a in record.provider_responses] == [
        (500, "Primary"),
        (200, "Secondary"),
    ]
    assert gw.secondary.calls[0].upstream_model == "up-chat-2"


async def test_a_bad_request_stops_the_search_and_releases_the_reservation(build: BuildGateway):
    gw = await build()
    gw.primary.then(Script(fail=gw.primary.failure(FailureKind.BAD_REQUEST, upstream_status=400)))
    key = await gw.key(limit_pico=10**12)
    with pytest.raises(BadRequest):
        await gw.service.complete(key, request(), context())
    assert gw.secondary.calls == []
    assert (await gw.fresh(key)).reserved_pico == 0
    assert gw.generations.generations == {}


async def test_a_request_one_provider_cannot_express_goes_to_the_next(build: BuildGateway):
    """Anthropic's API has no n > 1 nor audio input; an OpenAI-compatible fallback has: the
    request was never sent, so it is not a bad request, nor a failure of the endpoint."""
    gw = await build(breaker_failures=2)
    key = await gw.key()
    for _ in range(3):
        gw.primary.then(Script(fail=gw.primary.failure(FailureKind.UNSUPPORTED)))
        answer_ = await gw.service.complete(key, request(), context())
        assert answer_.head.provider_name == "Secondary"
    assert len(gw.primary.calls) == 3  # its circuit stayed closed
    gw.primary.then(Script(fail=gw.primary.failure(FailureKind.UNSUPPORTED)))
    gw.secondary.then(Script(fail=gw.secondary.failure(FailureKind.UNSUPPORTED)))
    with pytest.raises(BadRequest):  # nobody can: the caller's request is the problem
        await gw.service.complete(key, request(), context())


async def test_when_every_endpoint_is_rate_limited_the_shortest_retry_after_wins(build: BuildGateway):
    gw = await build()
    gw.primary.then(Script(fail=gw.primary.failure(FailureKind.RATE_LIMITED, retry_after=30.0)))
    gw.secondary.then(Script(fail=gw.secondary.failure(FailureKind.RATE_LIMITED, retry_after=7.0)))
    with pytest.raises(TooManyRequests) as caught:
        await gw.service.complete(await gw.key(), request(), context())
    assert caught.value.headers["Retry-After"] == "7"


async def test_fallback_models_are_tried_after_the_models_own_endpoints(build: BuildGateway):
    gw = await build()
    down = gw.primary.failure(FailureKind.UNREACHABLE)
    gw.primary.then(Script(fail=down))
    gw.secondary.then(Script(fail=gw.secondary.failure(FailureKind.OVERLOADED)), Script())
    answer_ = await gw.service.complete(await gw.key(), request(fallback_models=(OTHER_MODEL,)), context())
    assert answer_.head.model == OTHER_MODEL  # what served, and priced, it
    assert answer_.cost_pico == 10 * 3_000_000 + 5 * 4_000_000


async def test_a_breaker_skips_a_failing_endpoint_then_probes_it_after_the_cooldown(build: BuildGateway):
    gw = await build(breaker_failures=2, breaker_cooldown=10)
    key = await gw.key()
    for _ in range(2):
        gw.primary.then(Script(fail=gw.primary.failure(FailureKind.SERVER_ERROR)))
        await gw.service.complete(key, request(), context())
    assert len(gw.primary.calls) == 2
    await gw.service.complete(key, request(), context())
    assert len(gw.primary.calls) == 2, "an open circuit skips its endpoint"
    gw.clock.now += 10
    answer_ = await gw.service.complete(key, request(), context())
    assert len(gw.primary.calls) == 3 and answer_.head.provider_name == "Primary"  # the probe closed it


async def test_every_circuit_open_fails_at_once_with_retry_after(build: BuildGateway):
    gw = await build(breaker_failures=1, breaker_cooldown=10)
    key = await gw.key(limit_pico=10**12)
    gw.primary.then(Script(fail=gw.primary.failure(FailureKind.SERVER_ERROR)))
    gw.secondary.then(Script(fail=gw.secondary.failure(FailureKind.SERVER_ERROR)))
    with pytest.raises(BadGateway):
        await gw.service.complete(key, request(), context())
    gw.clock.now += 4
    with pytest.raises(BadGateway) as caught:
        await gw.service.complete(key, request(), context())
    assert caught.value.headers["Retry-After"] == "6"
    assert caught.value.metadata == {"provider_name": "Primary", "raw": "circuit open"}
    assert (len(gw.primary.calls), len(gw.secondary.calls)) == (1, 1)
    assert (await gw.fresh(key)).reserved_pico == 0


async def test_the_total_deadline_ends_a_stalled_attempt_with_a_timeout(build: BuildGateway):
    gw = await build(total_timeout=0.05)
    gw.primary.then(Script(stall=asyncio.Event()))
    with pytest.raises(UpstreamTimeout):
        await gw.service.complete(await gw.key(), request(), context())
    assert gw.secondary.calls == [], "no time was left for the fallback"


async def test_the_total_deadline_names_the_provider_it_waited_on_not_one_never_called(
    build: BuildGateway,
):
    gw = await build(total_timeout=0.05)
    gw.primary.then(Script(stall=asyncio.Event()))
    with pytest.raises(UpstreamTimeout) as caught:
        await gw.service.complete(await gw.key(), request(), context())
    assert caught.value.metadata["provider_name"] == "Primary"
    assert gw.secondary.calls == []


async def test_the_reservation_is_held_while_a_stream_runs_and_settled_at_its_end(build: BuildGateway):
    gw = await build()
    key = await gw.key(limit_pico=10**12)
    gate = asyncio.Event()
    steps = answer()
    gw.primary.then(Script(steps=[*steps[:2], gate, *steps[2:]]))
    relay = await gw.service.stream(key, request(stream=True, max_tokens=50), context())
    first = await anext(relay.events)
    assert first == TextDelta("Hello")
    prompt_bound = 8 + len("hi")  # the worst case: every prompt byte a token, plus a message's overhead
    reserved = prompt_bound * PER_PROMPT_TOKEN + 50 * PER_COMPLETION_TOKEN
    assert (await gw.fresh(key)).reserved_pico == reserved
    gate.set()
    await drain(relay)
    state = await gw.fresh(key)
    assert (state.reserved_pico, state.usage_pico) == (0, 20_000_000)


async def test_a_request_the_limit_cannot_cover_is_refused_before_any_upstream_call(build: BuildGateway):
    gw = await build()
    key = await gw.key(limit_pico=1_000)
    with pytest.raises(PaymentRequired) as caught:
        await gw.service.complete(key, request(), context())
    assert caught.value.metadata["limit_source"] == "key_limit"
    assert gw.primary.calls == []


async def test_credit_held_by_requests_in_flight_is_an_in_flight_refusal(build: BuildGateway):
    gw = await build()
    one_request = (8 + 2) * PER_PROMPT_TOKEN + 100 * PER_COMPLETION_TOKEN
    key = await gw.key(limit_pico=one_request)
    gate = asyncio.Event()
    gw.primary.then(Script(steps=[answer()[1], gate, *answer()[2:]]))
    relay = await gw.service.stream(key, request(stream=True), context())
    with pytest.raises(PaymentRequired) as caught:
        await gw.service.complete(key, request(), context())
    assert caught.value.metadata["limit_source"] == "in_flight_budget"
    assert caught.value.headers["Retry-After"] == "1"
    gate.set()
    await drain(relay)


async def test_a_caller_that_goes_away_leaves_a_cancelled_record_and_closes_the_upstream(build: BuildGateway):
    gw = await build()
    key = await gw.key(limit_pico=10**12)
    gate = asyncio.Event()
    gw.primary.then(Script(steps=[UsageReport(Usage(10, 1)), TextDelta("Hel"), gate, TextDelta("lo")]))
    relay = await gw.service.stream(key, request(stream=True), context())
    assert await anext(relay.events) == TextDelta("Hel")
    await relay.events.aclose()  # the caller disconnected
    await gw.run_background()
    record = gw.generations.generations[relay.head.generation_id]
    assert (record.cancelled, record.streamed, record.tokens_completion) == (True, True, 1)
    assert record.charge_pico == 10 * PER_PROMPT_TOKEN + 1 * PER_COMPLETION_TOKEN
    assert (gw.primary.open_streams, gw.primary.closed_streams) == (0, 1)
    state = await gw.fresh(key)
    assert (state.reserved_pico, state.usage_pico) == (0, record.charge_pico)


async def test_a_stream_cut_before_its_usage_is_charged_for_estimates_not_for_nothing(build: BuildGateway):
    """A caller that reads an answer and leaves before the provider's usage chunk still pays:
    otherwise a key's limit would not hold against streams left at their last chunk."""
    gw = await build()
    key = await gw.key(limit_pico=10**12)
    gate = asyncio.Event()
    steps = [
        TextDelta("The answer "),  # 11 characters
        ReasoningDelta("because"),  # 7
        ToolCallDelta(0, "call-1", "look", '{"q": 1}'),  # 4 + 8
        TextDelta(""),  # an empty piece counts nothing
        gate,
        Finish("stop", "stop"),
        UsageReport(Usage(10, 5)),
    ]
    gw.primary.then(Script(steps=steps))
    relay = await gw.service.stream(key, request(stream=True), context())
    for _ in range(4):
        await anext(relay.events)
    await relay.events.aclose()  # the caller disconnected before the usage
    await gw.run_background()
    record = gw.generations.generations[relay.head.generation_id]
    assert (record.cancelled, record.streamed) == (True, True)
    prompt = -(-(len("hi") + 8) // 4)  # a quarter of the prompt's bound: 3
    completion = -(-(11 + 7 + 12) // 4)  # a quarter of what was relayed: 8
    assert (record.tokens_prompt, record.tokens_completion) == (prompt, completion) == (3, 8)
    assert record.native_tokens_prompt is None and record.native_tokens_completion is None
    assert record.charge_pico == record.total_cost_pico == 3 * PER_PROMPT_TOKEN + 8 * PER_COMPLETION_TOKEN
    state = await gw.fresh(key)
    assert (state.reserved_pico, state.usage_pico) == (0, record.charge_pico)


async def test_a_cut_stream_is_never_charged_more_than_its_max_tokens(build: BuildGateway):
    gw = await build()
    key = await gw.key(limit_pico=10**12)
    gate = asyncio.Event()
    gw.primary.then(Script(steps=[TextDelta("x" * 400), gate, UsageReport(Usage(10, 2))]))
    relay = await gw.service.stream(key, request(stream=True, max_tokens=2), context())
    await anext(relay.events)
    await relay.events.aclose()
    await gw.run_background()
    record = gw.generations.generations[relay.head.generation_id]
    assert record.tokens_completion == 2  # not 100: the provider could not have made more


async def test_a_stream_cut_after_its_end_and_usage_keeps_the_providers_counts(build: BuildGateway):
    gw = await build()
    key = await gw.key(limit_pico=10**12)
    gate = asyncio.Event()
    steps = [TextDelta("x" * 400), UsageReport(Usage(10, 5)), Finish("stop", "stop"), gate]
    gw.primary.then(Script(steps=steps))
    relay = await gw.service.stream(key, request(stream=True), context())
    assert isinstance(await anext(relay.events), TextDelta)
    assert isinstance(await anext(relay.events), Finish)
    await relay.events.aclose()  # left before the end of the stream, after its last word
    await gw.run_background()
    record = gw.generations.generations[relay.head.generation_id]
    assert record.cancelled is True
    assert (record.tokens_completion, record.native_tokens_completion) == (5, 5)
    assert record.charge_pico == 10 * PER_PROMPT_TOKEN + 5 * PER_COMPLETION_TOKEN


async def test_an_upstream_that_dies_midway_ends_the_stream_with_an_error_and_charges_what_was_used(
    build: BuildGateway,
):
    gw = await build()
    key = await gw.key()
    died = gw.primary.failure(FailureKind.INVALID_RESPONSE, raw="broken")
    gw.primary.then(Script(steps=[TextDelta("Hel"), UsageReport(Usage(10, 1)), died]))
    relay = await gw.service.stream(key, request(stream=True), context())
    events = await drain(relay)
    assert events[0] == TextDelta("Hel")
    assert events[1] == Failed(502, died.message, {"provider_name": "Primary", "raw": "broken"})
    assert events[2] == Settled(Usage(10, 1), 12_000_000)
    record = gw.generations.generations[relay.head.generation_id]
    assert (record.finish_reason, record.native_finish_reason) == ("error", "error")
    assert [a.status for a in record.provider_responses] == [502]
    assert (await gw.fresh(key)).usage_pico == 12_000_000


async def test_an_empty_upstream_stream_is_a_failed_attempt_and_the_next_endpoint_serves(build: BuildGateway):
    gw = await build()
    gw.primary.then(Script(steps=[]))
    relay = await gw.service.stream(await gw.key(), request(stream=True), context())
    assert relay.head.provider_name == "Secondary"
    record_events = await drain(relay)
    assert isinstance(record_events[-1], Settled)
    record = gw.generations.generations[relay.head.generation_id]
    assert [a.status for a in record.provider_responses] == [502, 200]


async def test_a_reply_without_usage_is_charged_and_told_estimates(build: BuildGateway):
    """A provider that reports no usage is no free ride: the prompt at a token per four bytes
    of its bound, the answer at one per four characters; the native counts stay unknown."""
    gw = await build()
    gw.primary.then(Script(steps=answer(text="Hello there, all of you", usage=None)))
    answer_ = await gw.service.complete(await gw.key(), request(), context())
    prompt, completion = 3, 6  # ceil((8 + 2) / 4); ceil(23 / 4)
    assert answer_.completion.usage == Usage(prompt, completion)
    charge = prompt * PER_PROMPT_TOKEN + completion * PER_COMPLETION_TOKEN
    assert answer_.cost_pico == charge
    record = gw.generations.generations[answer_.head.generation_id]
    counted = (record.tokens_prompt, record.tokens_completion, record.charge_pico)
    assert counted == (prompt, completion, charge)
    assert (record.native_tokens_prompt, record.native_tokens_completion) == (None, None)


async def test_a_stream_without_usage_is_charged_and_told_estimates(build: BuildGateway):
    gw = await build()
    gw.primary.then(Script(steps=answer(text="Hello there, all of you", usage=None)))
    relay = await gw.service.stream(await gw.key(), request(stream=True), context())
    events = await drain(relay)
    settled = events[-1]
    assert isinstance(settled, Settled) and settled.usage == Usage(3, 6)  # 23 characters in 5 pieces
    record = gw.generations.generations[relay.head.generation_id]
    assert (record.tokens_prompt, record.tokens_completion, record.finish_reason) == (3, 6, "stop")
    assert record.charge_pico == settled.cost_pico == 3 * PER_PROMPT_TOKEN + 6 * PER_COMPLETION_TOKEN
    assert record.native_tokens_completion is None


async def test_a_reply_whose_usage_counts_no_prompt_is_charged_and_told_an_estimated_prompt(
    build: BuildGateway,
):
    """Every generation has a prompt: a report of 0 prompt tokens (or a missing, negative or
    non-integer count, which parse to 0) with a completion is believed for the completion and
    the prompt is estimated, as for an answer without usage; it was charged for no prompt."""
    gw = await build()
    gw.primary.then(Script(steps=answer(text="Hello there, all of you", usage=Usage(0, 7))))
    answer_ = await gw.service.complete(await gw.key(), request(), context())
    assert answer_.completion.usage == Usage(3, 7)  # ceil((8 + 2) / 4); the reported completion
    charge = 3 * PER_PROMPT_TOKEN + 7 * PER_COMPLETION_TOKEN
    assert answer_.cost_pico == charge
    record = gw.generations.generations[answer_.head.generation_id]
    assert (record.tokens_prompt, record.tokens_completion, record.charge_pico) == (3, 7, charge)
    assert (record.native_tokens_prompt, record.native_tokens_completion) == (None, 7)


async def test_a_stream_whose_usage_counts_no_prompt_is_charged_and_told_an_estimated_prompt(
    build: BuildGateway,
):
    gw = await build()
    reported = Usage(0, 7, reasoning_tokens=2)
    gw.primary.then(Script(steps=answer(text="Hello there, all of you", usage=reported)))
    relay = await gw.service.stream(await gw.key(), request(stream=True), context())
    events = await drain(relay)
    settled = events[-1]
    charge = 3 * PER_PROMPT_TOKEN + 7 * PER_COMPLETION_TOKEN
    assert settled == Settled(Usage(3, 7, reasoning_tokens=2), charge)
    record = gw.generations.generations[relay.head.generation_id]
    assert (record.tokens_prompt, record.tokens_completion, record.charge_pico) == (3, 7, charge)
    assert (record.native_tokens_prompt, record.native_tokens_completion) == (None, 7)
    assert record.native_tokens_reasoning == 2


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_a_usage_that_counts_no_completion_of_an_answer_is_charged_an_estimated_one(
    build: BuildGateway, stream: bool
):
    """An answer with words has completion tokens: a report of none (its count missing, 0 or
    junk) is believed for the prompt, and the completion is estimated from the answer; it was
    charged for no completion. An empty answer's 0 stands."""
    gw = await build()
    gw.primary.then(Script(steps=answer(text="Hello there, all of you", usage=Usage(10, 0))))
    gw.primary.then(Script(steps=answer(text="", usage=Usage(10, 0))))
    key = await gw.key()
    told = []
    for _ in range(2):
        if stream:
            relay = await gw.service.stream(key, request(stream=True), context())
            settled = (await drain(relay))[-1]
            assert isinstance(settled, Settled)
            told.append((relay.head.generation_id, settled.usage, settled.cost_pico))
        else:
            whole = await gw.service.complete(key, request(), context())
            told.append((whole.head.generation_id, whole.completion.usage, whole.cost_pico))
    (worded, worded_usage, worded_cost), (empty, empty_usage, empty_cost) = told
    assert worded_usage == Usage(10, 6)  # ceil(23 / 4)
    assert worded_cost == 10 * PER_PROMPT_TOKEN + 6 * PER_COMPLETION_TOKEN
    record = gw.generations.generations[worded]
    assert (record.tokens_prompt, record.tokens_completion) == (10, 6)
    assert (record.native_tokens_prompt, record.native_tokens_completion) == (10, None)
    assert (empty_usage, empty_cost) == (Usage(10, 0), 10 * PER_PROMPT_TOKEN)
    assert gw.generations.generations[empty].native_tokens_completion == 0


async def test_a_stream_whose_record_cannot_be_written_ends_with_a_bare_500_and_releases_credit(
    build: BuildGateway,
):
    gw = await build()
    key = await gw.key(limit_pico=10**12)
    relay = await gw.service.stream(key, request(stream=True), context())
    gw.generations.fail_next = RuntimeError("disk full at /var/lib/secret")
    events = await drain(relay)
    assert events[-1] == Failed(500, "Internal Server Error")
    assert not any(isinstance(e, Settled) for e in events)
    assert (await gw.fresh(key)).reserved_pico == 0


async def test_a_failed_whole_answer_record_releases_the_reservation_and_raises(build: BuildGateway):
    gw = await build()
    key = await gw.key(limit_pico=10**12)
    gw.generations.fail_next = RuntimeError("disk full")
    with pytest.raises(RuntimeError):
        await gw.service.complete(key, request(), context())
    assert (await gw.fresh(key)).reserved_pico == 0


async def test_a_management_key_cannot_make_completions(build: BuildGateway):
    gw = await build()
    with pytest.raises(GatewayError) as caught:
        await gw.service.complete(await gw.key(management=True), request(), context())
    assert caught.value.status == 403


async def test_a_402_says_limit_usage_reserved_worst_case_and_the_max_tokens_that_fits(build: BuildGateway):
    gw = await build()
    prompt = (8 + 2) * PER_PROMPT_TOKEN  # the prompt's worst case: "hi" plus a message's overhead
    limit = prompt + 80 * PER_COMPLETION_TOKEN
    key = await gw.key(limit_pico=limit)
    gate = asyncio.Event()
    gw.primary.then(Script(steps=[answer()[1], gate, *answer()[2:]]))
    relay = await gw.service.stream(key, request(stream=True, max_tokens=50), context())  # reserves 50 tokens
    held = prompt + 50 * PER_COMPLETION_TOKEN
    with pytest.raises(PaymentRequired) as caught:
        await gw.service.complete(key, request(max_tokens=40), context())
    metadata = caught.value.metadata
    assert metadata["limit_source"] == "in_flight_budget"
    assert (metadata["limit"], metadata["usage"], metadata["reserved"]) == (limit / 1e12, 0.0, held / 1e12)
    assert metadata["max_cost"] == (prompt + 40 * PER_COMPLETION_TOKEN) / 1e12
    assert metadata["max_tokens_that_fit"] == (limit - held - prompt) // PER_COMPLETION_TOKEN == 25
    assert "Lower max_tokens to 25 or less" in caught.value.message
    assert "$0.00011 reserved by requests in flight" in caught.value.message
    fits = await gw.service.complete(key, request(max_tokens=25), context())  # what it said fits, fits
    assert fits.cost_pico > 0
    gate.set()
    await drain(relay)
    with pytest.raises(PaymentRequired) as caught:
        await gw.service.complete(key, request(max_tokens=80), context())
    assert caught.value.metadata["limit_source"] == "key_limit"
    assert caught.value.metadata["usage"] > 0 and caught.value.metadata["reserved"] == 0.0


async def test_a_request_for_n_choices_reserves_each_of_them(build: BuildGateway):
    """n=8 at max_tokens 10 may be billed 80 completion tokens: a limit that holds one choice's
    worst case does not admit it, and the 402 says which max_tokens fits all eight."""
    gw = await build()
    prompt = (8 + 2) * PER_PROMPT_TOKEN
    key = await gw.key(limit_pico=prompt + 40 * PER_COMPLETION_TOKEN)
    with pytest.raises(PaymentRequired) as caught:
        await gw.service.complete(key, request(max_tokens=10, params={"n": 8}), context())
    assert caught.value.metadata["max_cost"] == (prompt + 80 * PER_COMPLETION_TOKEN) / 1e12
    assert caught.value.metadata["max_tokens_that_fit"] == 5
    assert "max_tokens 10 for each of 8 choices" in caught.value.message
    assert "Lower max_tokens to 5 or less" in caught.value.message
    fits = await gw.service.complete(key, request(max_tokens=5, params={"n": 8}), context())
    assert fits.cost_pico > 0


async def test_a_streams_usage_and_done_go_out_with_the_end_of_the_body(build: BuildGateway):
    from genledger.api.event_stream import EventStreamResponse
    from genledger.api.openai_chat import sse
    from tests.api.test_event_stream import SCOPE, Caller

    gw = await build()
    relay = await gw.service.stream(await gw.key(), request(stream=True), context())
    caller = Caller()
    await EventStreamResponse(sse(relay))(SCOPE, caller.receive, caller.send)
    bodies = [(m["body"], m["more_body"]) for m in caller.sent[1:]]
    # The deltas as they came; then the usage chunk and [DONE], recorded first, in the last write.
    assert all(more and b'"usage"' not in body for body, more in bodies[:-1])
    tail, more = bodies[-1]
    assert not more and tail.count(b"data: ") == 2
    assert b'"usage"' in tail and tail.endswith(b"data: [DONE]\n\n")
    assert relay.head.generation_id in gw.generations.generations


async def test_a_record_is_dated_when_its_request_arrived_not_when_it_ended(build: BuildGateway):
    """A stream is recorded at its end with the time it began, the time its id carries: the
    rollup's and statements' grace count on it, and a stream across midnight is its first day's."""
    gw = await build()
    key = await gw.key()
    gate = asyncio.Event()
    gw.primary.then(Script(steps=[TextDelta("Hi"), gate, Finish("stop", "stop"), UsageReport(Usage(3, 1))]))
    asked = datetime.now(UTC)
    relay = await gw.service.stream(key, request(stream=True), context())
    await anext(relay.events)
    await asyncio.sleep(0.3)
    gate.set()
    await drain(relay)
    ended = datetime.now(UTC)
    record = gw.generations.generations[relay.head.generation_id]
    assert asked - timedelta(seconds=0.05) <= record.created_at <= asked + timedelta(seconds=0.05)
    assert ended - record.created_at >= timedelta(seconds=0.3)
    id_time = datetime.fromtimestamp(int(record.id[4:17]) / 1000, UTC)  # gen-<13 digits of ms>...
    assert abs(record.created_at - id_time) < timedelta(seconds=0.05)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_an_upstream_id_and_finish_reason_too_long_for_the_ledger_are_cut_to_fit(
    build: BuildGateway, stream: bool
):
    """PostgreSQL refused the record (its columns are bounded) after the upstream's work."""
    from genledger.core.events import Identified
    from genledger.core.generation import MAX_NATIVE_FINISH_REASON, MAX_UPSTREAM_ID

    gw = await build()
    steps = [Identified("i" * 5000), TextDelta("hi"), Finish("stop", "f" * 500), UsageReport(Usage(10, 5))]
    gw.primary.then(Script(steps=steps))
    key = await gw.key()
    if stream:
        relay = await gw.service.stream(key, request(stream=True), context())
        await drain(relay)
        generation_id = relay.head.generation_id
    else:
        generation_id = (await gw.service.complete(key, request(), context())).head.generation_id
    record = gw.generations.generations[generation_id]
    assert (record.upstream_id, record.native_finish_reason) == (
        "i" * MAX_UPSTREAM_ID,
        "f" * MAX_NATIVE_FINISH_REASON,
    )
    assert record.provider_responses[-1].upstream_id == "i" * MAX_UPSTREAM_ID
    assert record.charge_pico == 10 * PER_PROMPT_TOKEN + 5 * PER_COMPLETION_TOKEN


def test_the_bounds_of_caller_and_upstream_text_are_the_ledger_s_columns():
    from genledger.core import generation
    from genledger.ledger.schema import generations

    for column, bound in {
        "external_user": generation.MAX_EXTERNAL_USER,
        "app_title": generation.MAX_APP_TITLE,
        "http_referer": generation.MAX_HTTP_REFERER,
        "origin": generation.MAX_HTTP_REFERER,
        "user_agent": generation.MAX_USER_AGENT,
        "upstream_id": generation.MAX_UPSTREAM_ID,
        "native_finish_reason": generation.MAX_NATIVE_FINISH_REASON,
    }.items():
        assert generations.c[column].type.length == bound, column


async def test_an_image_is_reserved_as_the_tokens_it_may_count_not_its_urls_bytes(build: BuildGateway):
    """A URL of a few dozen bytes may be billed as thousands of prompt tokens: a key whose
    limit covers the URL's bytes but not the image is refused before the upstream is called."""
    gw = await build(image_prompt_tokens=1_000)
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
    messages = ({"role": "user", "content": [{"type": "text", "text": "what?"}, image]},)
    key = await gw.key(limit_pico=500 * PER_PROMPT_TOKEN + 10 * PER_COMPLETION_TOKEN)
    with pytest.raises(PaymentRequired) as caught:
        await gw.service.complete(key, ChatRequest(model=MODEL, messages=messages, max_tokens=10), context())
    assert caught.value.metadata["prompt_tokens_bound"] > 1_000
    assert gw.primary.calls == []
