"""``generations.get_generation`` and ``generations.wait``, on both clients."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from client_kit import GENERATION_ID, Harness, fail, ok, scripted
from tests.contract import GENERATION_KEYS

from genledger.client import Generation, NotFoundResponseError, ProviderResponse, UnauthorizedResponseError
from genledger.client._generations import PollSchedule

GET = "generations.get_generation"
WAIT = "generations.wait"


async def test_get_generation_returns_the_typed_record(
    harness: Harness, generation_data: dict[str, Any]
) -> None:
    client = harness.client(scripted(ok(generation_data)))

    generation = await harness.call(client, GET, id=GENERATION_ID)

    assert isinstance(generation, Generation)
    assert generation.id == GENERATION_ID
    assert generation.total_cost == pytest.approx(0.00123)
    assert generation.tokens_prompt == 12 and isinstance(generation.tokens_prompt, int)
    assert generation.cache_discount is None
    assert generation.is_byok is False
    assert generation.provider_responses == (
        ProviderResponse(
            status=200, provider_name="OpenAI", id="chatcmpl-abc123", latency=400.0, is_byok=False
        ),
    )
    assert generation.model_dump(exclude_unset=False) == {
        **generation_data,
        # genledger's extensions, absent from an OpenRouter-shaped answer, read as None
        "app_title": None,
        "metadata": None,
        "provider_responses": tuple(
            {"endpoint_id": None, "model_permaslug": None, **p} for p in generation_data["provider_responses"]
        ),
    }
    (request,) = harness.requests
    assert request.method == "GET"
    assert request.url.path == "/api/v1/generation"
    assert request.url.params["id"] == GENERATION_ID


def test_every_contract_key_is_a_field(generation_data: dict[str, Any]) -> None:
    # The contract's keys in its order, then genledger's extensions.
    assert list(Generation.model_fields) == [*_contract_keys(), "app_title", "metadata"]
    assert list(generation_data) == _contract_keys()


async def test_nullable_keys_accept_null_and_optional_ids_may_be_absent(
    harness: Harness, generation_data: dict[str, Any]
) -> None:
    required = {"id", "total_cost", "created_at", "model", "origin", "usage", "is_byok", "data_region"}
    nulled = {key: (value if key in required else None) for key, value in generation_data.items()}
    for optional in ("request_id", "session_id", "response_cache_source_id"):
        del nulled[optional]
    client = harness.client(scripted(ok(nulled)))

    generation = await harness.call(client, GET, id=GENERATION_ID)

    assert generation.provider_responses is None
    assert generation.request_id is None and generation.session_id is None
    assert all(getattr(generation, key) is None for key in nulled if key not in required)


async def test_unknown_keys_are_kept(harness: Harness, generation_data: dict[str, Any]) -> None:
    generation_data["brand_new_field"] = {"nested": [1, 2]}
    generation_data["provider_responses"][0]["routed_service_tier"] = "flex"
    client = harness.client(scripted(ok(generation_data)))

    generation = await harness.call(client, GET, id=GENERATION_ID)

    assert generation.brand_new_field == {"nested": [1, 2]}
    assert generation.model_extra == {"brand_new_field": {"nested": [1, 2]}}
    assert generation.provider_responses[0].routed_service_tier == "flex"
    assert generation.model_dump()["brand_new_field"] == {"nested": [1, 2]}


async def test_unknown_api_type_values_do_not_fail(harness: Harness, generation_data: dict[str, Any]) -> None:
    client = harness.client(scripted(ok({**generation_data, "api_type": "hologram"})))
    generation = await harness.call(client, GET, id=GENERATION_ID)
    assert generation.api_type == "hologram"


async def test_generation_is_immutable(harness: Harness, generation_data: dict[str, Any]) -> None:
    generation_data["extra_key"] = 1
    client = harness.client(scripted(ok(generation_data)))
    generation = await harness.call(client, GET, id=GENERATION_ID)

    with pytest.raises(pydantic.ValidationError):
        generation.total_cost = 0.0
    with pytest.raises(pydantic.ValidationError):
        generation.extra_key = 2
    with pytest.raises(pydantic.ValidationError):
        generation.provider_responses[0].status = 500
    assert isinstance(generation.provider_responses, tuple)
    # Frozen, so hashed by value: equal to one built from the fixture's values, as a set member too.
    built = ProviderResponse(
        status=200, provider_name="OpenAI", id="chatcmpl-abc123", latency=400.0, is_byok=False
    )
    assert hash(generation.provider_responses[0]) == hash(built)
    assert {generation.provider_responses[0], built} == {built}
    assert built.model_copy(update={"status": 500}) not in {generation.provider_responses[0]}


@pytest.mark.parametrize("bad_id", ["", "   ", None, 123])
async def test_empty_or_non_string_id_is_refused_before_any_request(harness: Harness, bad_id: Any) -> None:
    client = harness.client(scripted(ok({})))
    with pytest.raises(ValueError, match="id must be a non-empty generation id"):
        await harness.call(client, GET, id=bad_id)
    with pytest.raises(ValueError):
        await harness.call(client, WAIT, id=bad_id)
    assert harness.requests == []


async def test_id_is_sent_as_a_query_parameter_verbatim(
    harness: Harness, generation_data: dict[str, Any]
) -> None:
    client = harness.client(scripted(ok(generation_data)))
    await harness.call(client, GET, id="gen-a/b?c&d=e")
    assert harness.requests[0].url.params["id"] == "gen-a/b?c&d=e"
    assert harness.requests[0].url.path == "/api/v1/generation"


async def test_wait_polls_on_404_until_the_record_exists(
    harness: Harness, generation_data: dict[str, Any]
) -> None:
    client = harness.client(scripted(fail(404), fail(404), fail(404), ok(generation_data)))

    generation = await harness.call(client, WAIT, id=GENERATION_ID, poll_interval=0.25, max_poll_interval=0.6)

    assert generation.id == GENERATION_ID
    assert len(harness.requests) == 4
    assert harness.sleeps == [0.25, 0.5, 0.6]


async def test_wait_returns_at_once_when_the_record_exists(
    harness: Harness, generation_data: dict[str, Any]
) -> None:
    client = harness.client(scripted(ok(generation_data)))
    await harness.call(client, WAIT, id=GENERATION_ID)
    assert len(harness.requests) == 1
    assert harness.sleeps == []


async def test_wait_raises_the_last_not_found_when_time_runs_out(harness: Harness) -> None:
    client = harness.client(scripted(fail(404, "no such generation")), real_sleep=True)

    with pytest.raises(NotFoundResponseError, match="no such generation") as caught:
        await harness.call(
            client, WAIT, id=GENERATION_ID, timeout=0.05, poll_interval=0.01, max_poll_interval=0.02
        )

    assert caught.value.status_code == 404
    assert len(harness.requests) >= 2


async def test_wait_with_zero_timeout_makes_exactly_one_attempt(harness: Harness) -> None:
    client = harness.client(scripted(fail(404)))
    with pytest.raises(NotFoundResponseError):
        await harness.call(client, WAIT, id=GENERATION_ID, timeout=0)
    assert len(harness.requests) == 1


async def test_wait_does_not_poll_on_other_errors(harness: Harness) -> None:
    client = harness.client(scripted(fail(401), ok({})))
    with pytest.raises(UnauthorizedResponseError):
        await harness.call(client, WAIT, id=GENERATION_ID)
    assert len(harness.requests) == 1


async def test_wait_retries_transient_errors_between_polls(
    harness: Harness, generation_data: dict[str, Any]
) -> None:
    client = harness.client(scripted(fail(404), fail(503), ok(generation_data)))
    await harness.call(client, WAIT, id=GENERATION_ID, poll_interval=0.1)
    assert len(harness.requests) == 3
    assert harness.sleeps[0] == 0.1  # the poll wait; then the retry backoff
    assert len(harness.sleeps) == 2


def test_poll_schedule_doubles_up_to_the_cap_and_stops_at_the_deadline() -> None:
    now = [100.0]
    schedule = PollSchedule(timeout=3.0, poll_interval=0.5, max_poll_interval=1.0, clock=lambda: now[0])
    delays = []
    while (delay := schedule.next_delay()) is not None:
        delays.append(delay)
        now[0] += delay
    assert delays == [0.5, 1.0, 1.0, 0.5]


@pytest.mark.parametrize(
    ("timeout", "poll_interval", "max_poll_interval"),
    [(-1.0, 0.5, 1.0), (float("inf"), 0.5, 1.0), (1.0, 0.0, 1.0), (1.0, 2.0, 1.0)],
)
def test_poll_schedule_refuses_bad_arguments(
    timeout: float, poll_interval: float, max_poll_interval: float
) -> None:
    with pytest.raises(ValueError):
        PollSchedule(timeout=timeout, poll_interval=poll_interval, max_poll_interval=max_poll_interval)


def _contract_keys() -> list[str]:
    """The keys of the generation object in shared/reference/generation-api.md, in order."""
    return list(GENERATION_KEYS)
