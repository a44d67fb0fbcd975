"""Embeddings and legacy prompt completions in process: pricing, recording, credits, rate
limits, fallbacks, cancellation, and routing onto the endpoints that offer them."""

from __future__ import annotations

import asyncio

import pytest

from genledger.core.embeddings import EmbeddingRequest
from genledger.core.events import Settled, TextDelta
from genledger.core.failures import FailureKind
from genledger.core.prompt import PromptRequest
from genledger.core.usage import Usage
from genledger.errors import BadGateway, BadRequest, NotFound, PaymentRequired, TooManyRequests
from tests.inprocess.conftest import (
    EMBED_MODEL,
    MODEL,
    PLAIN_EMBED_MODEL,
    BuildGateway,
    context,
    request,
)
from tests.inprocess.scripted import Script, answer

PER_INPUT_TOKEN = 1_000_000  # picodollars at 1 USD per million
PER_COMPLETION_TOKEN = 2_000_000


def embedding(
    model: str = EMBED_MODEL, inputs: tuple[str, ...] = ("hello", "world!"), **kwargs
) -> EmbeddingRequest:
    return EmbeddingRequest(model=model, inputs=inputs, **kwargs)


def prompt(**kwargs) -> PromptRequest:
    return PromptRequest(model=MODEL, prompt="Once upon a time", **kwargs)


async def test_embeddings_are_priced_per_input_token_recorded_and_charged(build: BuildGateway):
    gw = await build()
    key = await gw.key(limit_pico=10**12)
    gw.primary.then(Script(answer("ignored", usage=Usage(prompt_tokens=7), upstream_id="emb-1")))
    result = await gw.service.embed(key, embedding(user="u-1"), context())
    assert result.embeddings.vectors == ((5.0, 0.0), (6.0, 1.0))
    assert (result.model, result.provider_name, result.cost_pico) == (
        EMBED_MODEL,
        "Primary",
        7 * PER_INPUT_TOKEN,
    )
    record = gw.generations.generations[result.generation_id]
    assert record.api_type == "embeddings"
    assert (record.tokens_prompt, record.tokens_completion) == (7, 0)
    assert (record.total_cost_pico, record.charge_pico) == (7 * PER_INPUT_TOKEN, 7 * PER_INPUT_TOKEN)
    assert (record.upstream_id, record.streamed, record.finish_reason, record.external_user) == (
        "emb-1",
        False,
        None,
        "u-1",
    )
    state = await gw.fresh(key)
    assert (state.usage_pico, state.reserved_pico) == (7 * PER_INPUT_TOKEN, 0)
    assert gw.primary.calls[0].upstream_model == "up-embed"


async def test_embeddings_whose_usage_counts_no_input_are_charged_an_estimate(build: BuildGateway):
    """An embedding is all prompt: a report counting none of it (here only a completion) is
    no report, estimated as one without usage."""
    gw = await build()
    gw.primary.then(Script(answer("x", usage=Usage(prompt_tokens=0, completion_tokens=5))))
    result = await gw.service.embed(await gw.key(), embedding(), context())
    record = gw.generations.generations[result.generation_id]
    assert (record.tokens_prompt, record.tokens_completion) == (3, 0)  # ceil(11 / 4)
    assert record.native_tokens_prompt is None
    assert result.cost_pico == record.charge_pico == 3 * PER_INPUT_TOKEN


async def test_embeddings_fall_back_and_the_fallback_endpoint_prices_them(build: BuildGateway):
    gw = await build()
    key = await gw.key()
    gw.primary.then(Script(fail=gw.primary.failure(FailureKind.SERVER_ERROR, upstream_status=500)))
    gw.secondary.then(Script(answer("x", usage=Usage(prompt_tokens=10))))
    result = await gw.service.embed(key, embedding(), context())
    record = gw.generations.generations[result.generation_id]
    assert record.provider_name == "Secondary"
    assert [a.status for a in record.provider_responses] == [500, 200]
    assert record.total_cost_pico == 10 * PER_INPUT_TOKEN // 2  # the secondary's own 0.5 USD/M


async def test_an_embeddings_failure_everywhere_releases_the_reservation(build: BuildGateway):
    gw = await build()
    key = await gw.key(limit_pico=10**12)
    for provider in (gw.primary, gw.secondary):
        provider.then(Script(fail=provider.failure(FailureKind.SERVER_ERROR, upstream_status=502)))
    with pytest.raises(BadGateway):
        await gw.service.embed(key, embedding(), context())
    state = await gw.fresh(key)
    assert (state.usage_pico, state.reserved_pico) == (0, 0)
    assert gw.generations.generations == {}


async def test_embeddings_reserve_the_inputs_worst_case_and_refuse_beyond_the_limit(build: BuildGateway):
    gw = await build()
    # "hello" + "world!" are at most 11 tokens (a token is a byte or more): the key covers 10.
    key = await gw.key(limit_pico=10 * PER_INPUT_TOKEN)
    with pytest.raises(PaymentRequired):
        await gw.service.embed(key, embedding(), context())
    assert gw.primary.calls == []
    ok = await gw.key("bob", limit_pico=11 * PER_INPUT_TOKEN)
    gw.primary.then(Script(answer("x", usage=Usage(prompt_tokens=3))))
    await gw.service.embed(ok, embedding(), context())
    assert (await gw.fresh(ok)).usage_pico == 3 * PER_INPUT_TOKEN


async def test_embeddings_count_against_the_request_rate_limit(build: BuildGateway):
    gw = await build(requests_per_minute=1)
    key = await gw.key()
    await gw.service.embed(key, embedding(), context())
    with pytest.raises(TooManyRequests):
        await gw.service.embed(key, embedding(), context())


async def test_models_serve_only_their_kind_and_providers_only_what_they_offer(build: BuildGateway):
    gw = await build()
    key = await gw.key()
    with pytest.raises(BadRequest, match="chat model and cannot serve embeddings"):
        await gw.service.embed(key, embedding(model=MODEL), context())
    with pytest.raises(BadRequest, match="embedding model and cannot serve chat"):
        await gw.service.complete(key, request(EMBED_MODEL), context())
    with pytest.raises(NotFound, match="No endpoints found that support embeddings") as refused:
        await gw.service.embed(key, embedding(model=PLAIN_EMBED_MODEL), context())
    assert refused.value.status == 404


async def test_a_prompt_completion_is_recorded_as_completions(build: BuildGateway):
    gw = await build()
    key = await gw.key(limit_pico=10**12)
    result = await gw.service.complete_prompt(key, prompt(max_tokens=20), context())
    assert result.completion.choices[0].content == "Hello there"
    cost = 10 * PER_INPUT_TOKEN + 5 * PER_COMPLETION_TOKEN
    assert result.cost_pico == cost
    record = gw.generations.generations[result.head.generation_id]
    assert (record.api_type, record.streamed, record.total_cost_pico) == ("completions", False, cost)
    assert gw.primary.calls[0].request.prompt == "Once upon a time"
    assert (await gw.fresh(key)).reserved_pico == 0


async def test_a_streamed_prompt_completion_settles_and_its_cancellation_is_recorded(build: BuildGateway):
    gw = await build()
    key = await gw.key(limit_pico=10**12)
    relay = await gw.service.stream_prompt(key, prompt(stream=True), context())
    events = [event async for event in relay.events]
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hello", " there"]
    assert events[-1] == Settled(Usage(10, 5), 10 * PER_INPUT_TOKEN + 5 * PER_COMPLETION_TOKEN)

    hold = asyncio.Event()
    gw.primary.then(Script(steps=[*answer("one two")[:2], hold]))
    relay = await gw.service.stream_prompt(key, prompt(stream=True), context())
    events_iter = relay.events
    assert isinstance(await anext(events_iter), TextDelta)
    await events_iter.aclose()  # the caller went away
    await gw.run_background()
    record = gw.generations.generations[relay.head.generation_id]
    assert (record.cancelled, record.streamed, record.api_type) == (True, True, "completions")
    assert (await gw.fresh(key)).reserved_pico == 0
    assert gw.primary.open_streams == 0
