"""The retry policy as a pure table, and the clients' retry loop on a mock transport."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from client_kit import GENERATION_ID, Harness, Reply, fail, ok, scripted

from genledger.client import RETRYABLE_STATUS_CODES, RetryPolicy
from genledger.client.errors import APIConnectionError, APIError, APIStatusError, APITimeoutError

GET = "generations.get_generation"
NOW = 1_700_000_000.0
RETRYABLE = [408, 429, 500, 502, 503, 504, 524, 529]
NEVER_RETRIED = [400, 401, 402, 403, 404]


def policy(**kwargs: Any) -> RetryPolicy:
    """A deterministic policy: no jitter drawn, a fixed clock."""
    return RetryPolicy(rand=lambda: 0.0, clock=lambda: NOW, **kwargs)


# -- the pure policy -------------------------------------------------------------------------


def test_retryable_statuses_are_the_documented_set() -> None:
    assert sorted(RETRYABLE_STATUS_CODES) == RETRYABLE
    assert not set(NEVER_RETRIED) & RETRYABLE_STATUS_CODES


@pytest.mark.parametrize(
    ("status", "retries_taken", "max_retries", "expected"),
    [
        *[(status, 0, 2, True) for status in RETRYABLE],
        *[(status, 0, 2, False) for status in NEVER_RETRIED],
        (None, 0, 2, True),  # connection error or timeout
        (None, 1, 2, True),
        (None, 2, 2, False),
        (503, 2, 2, False),
        (503, 0, 0, False),
        (418, 0, 2, False),
        (409, 0, 2, False),
    ],
)
def test_should_retry(status: int | None, retries_taken: int, max_retries: int, expected: bool) -> None:
    assert (
        policy().should_retry(retries_taken=retries_taken, max_retries=max_retries, status_code=status)
        is expected
    )


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Retry-After": "3"}, 3.0),
        ({"Retry-After": "0"}, 0.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"Retry-After": "-4"}, 0.0),
        ({"retry-after": format_datetime(datetime.fromtimestamp(NOW + 7, UTC), usegmt=True)}, 7.0),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # a date in the past
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "inf"}, None),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"retry-after-ms": "junk", "Retry-After": "9"}, 9.0),
        ({"Retry-After-Ms": "1200"}, 1.2),
    ],
)
def test_retry_after_parsing(headers: dict[str, str], expected: float | None) -> None:
    result = policy().retry_after(headers)
    assert result == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize(
    ("headers", "retries_taken", "expected"),
    [
        ({"Retry-After": "3"}, 0, 3.0),
        ({"Retry-After": "3"}, 5, 3.0),  # the server's word beats backoff
        ({"Retry-After": "3600"}, 0, 60.0),  # capped at max_retry_after
        ({"retry-after-ms": "90000"}, 0, 60.0),
        ({"Retry-After": "garbage"}, 1, 1.0),  # falls back to backoff
        (None, 0, 0.5),
        (None, 1, 1.0),
        (None, 2, 2.0),
        (None, 4, 8.0),
        (None, 10, 8.0),  # capped at max_delay
    ],
)
def test_delay(headers: dict[str, str] | None, retries_taken: int, expected: float) -> None:
    assert policy().delay(retries_taken=retries_taken, headers=headers) == pytest.approx(expected)


@pytest.mark.parametrize("draw", [0.0, 0.3, 0.999])
def test_backoff_jitter_stays_within_its_fraction(draw: float) -> None:
    jittered = RetryPolicy(rand=lambda: draw, jitter=0.25)
    assert 0.75 * 2.0 <= jittered.backoff(2) <= 2.0
    assert jittered.backoff(2) == pytest.approx(2.0 * (1 - 0.25 * draw))


def test_policy_tuning() -> None:
    tuned = policy(initial_delay=0.1, max_delay=0.3, max_retry_after=5.0, retry_status_codes=frozenset({418}))
    assert [tuned.backoff(n) for n in range(4)] == pytest.approx([0.1, 0.2, 0.3, 0.3])
    assert tuned.delay(retries_taken=0, headers={"Retry-After": "30"}) == 5.0
    assert tuned.should_retry(retries_taken=0, max_retries=1, status_code=418)
    assert not tuned.should_retry(retries_taken=0, max_retries=1, status_code=503)


# -- the clients' retry loop -----------------------------------------------------------------


@pytest.mark.parametrize("status", RETRYABLE)
async def test_retryable_statuses_are_retried_max_retries_times(harness: Harness, status: int) -> None:
    client = harness.client(scripted(fail(status)), retry_policy=policy())
    with pytest.raises(APIStatusError) as caught:
        await harness.call(client, GET, id=GENERATION_ID)
    assert caught.value.status_code == status
    assert len(harness.requests) == 3  # 1 attempt + 2 retries (the default)
    assert harness.sleeps == [0.5, 1.0]


@pytest.mark.parametrize("status", RETRYABLE)
async def test_a_retry_can_succeed(harness: Harness, status: int, generation_data: dict[str, Any]) -> None:
    client = harness.client(scripted(fail(status), ok(generation_data)), retry_policy=policy())
    generation = await harness.call(client, GET, id=GENERATION_ID)
    assert generation.id == GENERATION_ID
    assert len(harness.requests) == 2


@pytest.mark.parametrize("status", NEVER_RETRIED)
async def test_client_errors_are_never_retried(harness: Harness, status: int) -> None:
    client = harness.client(scripted(fail(status, headers={"Retry-After": "1"})), max_retries=5)
    with pytest.raises(APIStatusError):
        await harness.call(client, GET, id=GENERATION_ID)
    assert len(harness.requests) == 1
    assert harness.sleeps == []


async def test_non_json_retryable_errors_are_retried_too(harness: Harness) -> None:
    gateway_page = Reply(502, content=b"<html>Bad Gateway</html>", headers={"Content-Type": "text/html"})
    client = harness.client(scripted(gateway_page), retry_policy=policy())
    with pytest.raises(APIError):
        await harness.call(client, GET, id=GENERATION_ID)
    assert len(harness.requests) == 3


@pytest.mark.parametrize(
    ("headers", "expected_sleeps"),
    [
        ({"Retry-After": "2"}, [2.0, 2.0]),
        ({"retry-after-ms": "150"}, [0.15, 0.15]),
        ({"Retry-After": format_datetime(datetime.fromtimestamp(NOW + 4, UTC), usegmt=True)}, [4.0, 4.0]),
        ({"Retry-After": "86400"}, [60.0, 60.0]),
    ],
    ids=["seconds", "milliseconds", "http-date", "capped"],
)
async def test_retry_after_is_honoured(
    harness: Harness, headers: dict[str, str], expected_sleeps: list[float]
) -> None:
    client = harness.client(scripted(fail(429, headers=headers)), retry_policy=policy())
    with pytest.raises(APIStatusError):
        await harness.call(client, GET, id=GENERATION_ID)
    assert harness.sleeps == pytest.approx(expected_sleeps)


@pytest.mark.parametrize("max_retries", [0, 1, 4])
async def test_client_max_retries(harness: Harness, max_retries: int) -> None:
    client = harness.client(scripted(fail(500)), max_retries=max_retries, retry_policy=policy())
    with pytest.raises(APIStatusError):
        await harness.call(client, GET, id=GENERATION_ID)
    assert len(harness.requests) == max_retries + 1
    assert harness.sleeps == [0.5, 1.0, 2.0, 4.0][:max_retries]


@pytest.mark.parametrize(("client_retries", "call_retries"), [(2, 0), (0, 3), (5, 1)])
async def test_per_call_max_retries_overrides_the_client(
    harness: Harness, client_retries: int, call_retries: int
) -> None:
    client = harness.client(scripted(fail(503)), max_retries=client_retries)
    with pytest.raises(APIStatusError):
        await harness.call(client, GET, id=GENERATION_ID, max_retries=call_retries)
    assert len(harness.requests) == call_retries + 1
    harness.requests.clear()
    with pytest.raises(APIStatusError):
        await harness.call(client, GET, id=GENERATION_ID)
    assert len(harness.requests) == client_retries + 1


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
async def test_max_retries_must_be_a_non_negative_int(harness: Harness, bad: Any) -> None:
    with pytest.raises(ValueError, match="max_retries"):
        harness.client(scripted(ok({})), max_retries=bad)
    client = harness.client(scripted(ok({})))
    with pytest.raises(ValueError, match="max_retries"):
        await harness.call(client, GET, id=GENERATION_ID, max_retries=bad)
    assert harness.requests == []


@pytest.mark.parametrize(
    "exception", [httpx.ReadTimeout, httpx.ConnectTimeout, httpx.WriteTimeout, httpx.PoolTimeout]
)
async def test_timeouts_are_retried_then_raised(
    harness: Harness, exception: type[httpx.RequestError]
) -> None:
    client = harness.client(scripted(Reply(raise_=exception)), retry_policy=policy())
    with pytest.raises(APITimeoutError) as caught:
        await harness.call(client, GET, id=GENERATION_ID)
    assert isinstance(caught.value.__cause__, exception)
    assert caught.value.request.url.path == "/api/v1/generation"
    assert len(harness.requests) == 3
    assert harness.sleeps == [0.5, 1.0]


@pytest.mark.parametrize("exception", [httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError])
async def test_connection_errors_are_retried_then_raised(
    harness: Harness, exception: type[httpx.RequestError]
) -> None:
    client = harness.client(scripted(Reply(raise_=exception)), retry_policy=policy())
    with pytest.raises(APIConnectionError) as caught:
        await harness.call(client, GET, id=GENERATION_ID)
    assert type(caught.value) is APIConnectionError
    assert isinstance(caught.value.__cause__, exception)
    assert len(harness.requests) == 3


async def test_a_connection_error_then_success(harness: Harness, generation_data: dict[str, Any]) -> None:
    client = harness.client(
        scripted(Reply(raise_=httpx.ConnectError), Reply(raise_=httpx.ReadTimeout), ok(generation_data))
    )
    generation = await harness.call(client, GET, id=GENERATION_ID)
    assert generation.id == GENERATION_ID
    assert len(harness.requests) == 3


async def test_request_errors_that_are_not_transport_errors_are_not_retried(harness: Harness) -> None:
    client = harness.client(scripted(Reply(raise_=httpx.DecodingError)))
    with pytest.raises(APIConnectionError):
        await harness.call(client, GET, id=GENERATION_ID)
    assert len(harness.requests) == 1


async def test_one_request_id_per_call_reused_across_retries(
    harness: Harness, generation_data: dict[str, Any]
) -> None:
    client = harness.client(scripted(fail(500), fail(502), ok(generation_data), ok(generation_data)))
    await harness.call(client, GET, id=GENERATION_ID)
    await harness.call(client, GET, id=GENERATION_ID)
    ids = [request.headers["X-Request-ID"] for request in harness.requests]
    assert ids[0] == ids[1] == ids[2]
    assert ids[3] != ids[0]
