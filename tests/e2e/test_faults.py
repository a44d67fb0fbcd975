"""Upstream failures as the caller sees them: status, envelope, and what the ledger keeps."""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import openai
import pytest
from openrouter import OpenRouter
from openrouter import errors as or_errors
from openrouter.utils import BackoffStrategy, RetryConfig

from tests.e2e.conftest import FAKE_PROVIDER, MAX_BODY_BYTES, MODEL, Keys
from tests.gateway import GatewayServer

NO_RETRIES = RetryConfig("none", BackoffStrategy(1, 1, 1, 1), False)
MESSAGES = [{"role": "user", "content": "hello"}]


def post(gateway: GatewayServer, key: str, **body) -> httpx.Response:
    payload = {"model": MODEL, "messages": MESSAGES, **body}
    return httpx.post(
        gateway.base_url + "/chat/completions",
        json=payload,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )


def assert_envelope(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == status
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in response.text
    return error


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(
    ("behavior", "params", "status"),
    [
        ("status", {"status": 500}, 502),
        ("status", {"status": 502}, 502),
        ("garbage", {}, 502),
        ("empty", {}, 502),
        ("stall", {"delay": 3}, 524),
        ("status", {"status": 529}, 529),
        ("overloaded", {}, 529),
        ("status", {"status": 429, "retry_after": 7}, 429),
        ("status", {"status": 400}, 400),
    ],
)
def test_upstream_failures_map_to_statuses(gateway, keys: Keys, upstream, behavior, params, status, stream):
    upstream.set_behavior(behavior, times=1, **params)
    response = post(gateway, keys.alice, stream=stream)
    if stream and behavior == "garbage":
        # The fake sends a good first chunk before the garbage: once bytes have gone out
        # the status is fixed, and the failure becomes an error chunk at the end.
        assert response.status_code == 200
        assert '"finish_reason":"error"' in response.text and response.text.endswith("data: [DONE]\n\n")
        return
    error = assert_envelope(response, status)
    assert error["metadata"]["provider_name"] == FAKE_PROVIDER
    assert "raw" in error["metadata"]
    if status == 429:
        assert response.headers["Retry-After"] == "7"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(
    ("retry_after", "relayed"),
    [(float("nan"), None), (float("inf"), None), (-5.0, None), (1e20, "3600"), (2.5, "3")],
    ids=["nan", "inf", "negative", "huge", "fraction"],
)
def test_an_upstream_retry_after_is_relayed_only_when_sane(
    gateway, keys: Keys, upstream, retry_after, relayed, stream
):
    upstream.set_behavior("status", times=1, status=429, retry_after=retry_after)
    response = post(gateway, keys.alice, stream=stream)
    error = assert_envelope(response, 429)
    assert error["metadata"]["provider_name"] == FAKE_PROVIDER
    assert response.headers.get("Retry-After") == relayed


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_an_unreachable_provider_is_502_and_its_address_stays_in_the_log(gateway, keys: Keys, stream, caplog):
    port = str(urlsplit(gateway.settings.providers["nowhere"].base_url).port)
    with caplog.at_level(logging.WARNING, logger="genledger.providers"):
        response = post(gateway, keys.alice, model="acme/unreachable", stream=stream)
    error = assert_envelope(response, 502)
    assert error["metadata"]["provider_name"] == "Nowhere"
    assert error["message"] == "Nowhere: cannot connect (connection refused)"
    assert error["metadata"]["raw"] == "ConnectError: connection refused"
    assert "127.0.0.1" not in response.text and port not in response.text
    assert any("127.0.0.1" in r.getMessage() and port in r.getMessage() for r in caplog.records)


def test_the_official_client_sees_typed_errors(gateway, keys: Keys, upstream):
    client = openai.OpenAI(api_key=keys.alice, base_url=gateway.base_url, max_retries=0)
    upstream.set_behavior("status", times=1, status=529)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert caught.value.status_code == 529
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="no/such-model", messages=MESSAGES)


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b'{"model": "acme/fast-chat"}', 400, "'messages'"),
        (b'{"model": "no/such-model", "messages": [{"role": "user", "content": "x"}]}', 400, "no/such-model"),
        (b'{"model": "acme/fast-chat", "messages": "x" }' + b" " * MAX_BODY_BYTES, 413, "larger than"),
    ],
)
def test_bad_requests_get_the_envelope(gateway, keys: Keys, body, status, fragment):
    response = httpx.post(
        gateway.base_url + "/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {keys.alice}", "Content-Type": "application/json"},
    )
    assert fragment in assert_envelope(response, status)["message"]


def test_oversized_chunked_bodies_are_refused_too(gateway, keys: Keys):
    def chunks():
        for _ in range(MAX_BODY_BYTES // 1024 + 2):
            yield b" " * 1024

    response = httpx.post(
        gateway.base_url + "/chat/completions",
        content=chunks(),
        headers={"Authorization": f"Bearer {keys.alice}"},
    )
    assert_envelope(response, 413)


def test_unknown_routes_and_wrong_methods(gateway, keys: Keys):
    headers = {"Authorization": f"Bearer {keys.alice}"}
    assert_envelope(httpx.get(gateway.base_url + "/nope", headers=headers), 404)
    assert_envelope(httpx.get(gateway.url + "/", headers=headers), 404)
    wrong = httpx.put(gateway.base_url + "/generation", headers=headers)
    assert_envelope(wrong, 405)
    assert wrong.headers["Allow"] == "GET, HEAD"
    wrong = httpx.get(gateway.base_url + "/chat/completions", headers=headers)
    assert_envelope(wrong, 405)
    assert wrong.headers["Allow"] == "POST"
    # A path served by one route per method: its 405 names them all.
    for path, allowed in [("/keys", "GET, HEAD, POST"), ("/keys/" + "0" * 64, "DELETE, GET, HEAD, PATCH")]:
        wrong = httpx.put(gateway.base_url + path, headers=headers)
        assert_envelope(wrong, 405)
        assert wrong.headers["Allow"] == allowed
    page = httpx.put(gateway.url + "/dashboard/keys/" + "0" * 64)
    assert (page.status_code, page.headers["Allow"]) == (405, "GET, HEAD, POST")


def sse_data(response: httpx.Response) -> list[str]:
    """The ``data:`` payloads of a server-sent event stream, in order."""
    return [line.removeprefix("data: ") for line in response.text.splitlines() if line.startswith("data: ")]


def poll_record(sdk: OpenRouter, generation_id: str, within: float) -> Any:
    """The generation's record once it is written; only "not found yet" is waited out."""
    deadline = time.monotonic() + within
    while True:
        try:
            return sdk.generations.get_generation(id=generation_id).data
        except or_errors.NotFoundResponseError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.02)


def test_a_stream_that_dies_midway_ends_with_an_error_chunk_and_is_recorded(gateway, keys: Keys, upstream):
    upstream.set_behavior("die_mid_stream", times=1, chunks=3)
    response = post(gateway, keys.alice, stream=True)
    assert response.status_code == 200
    *chunks, done = sse_data(response)
    assert done == "[DONE]"
    role, *content, error, usage = (json.loads(chunk) for chunk in chunks)
    # What the upstream sent before it died is relayed, then one error chunk, then usage.
    assert role["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["delta"] for c in content] == [
        {"content": "tok"},
        {"content": " tok"},
        {"content": " tok"},
    ]
    assert all(c["choices"][0]["finish_reason"] is None for c in [role, *content])
    assert error["error"]["code"] == 502
    assert error["error"]["message"] == "FakeAI: broken response body"
    assert error["error"]["metadata"]["provider_name"] == FAKE_PROVIDER
    assert error["choices"] == [
        {"index": 0, "delta": {"content": ""}, "finish_reason": "error", "native_finish_reason": "error"}
    ]
    assert usage["choices"] == [] and "error" not in usage
    generation_id = role["id"]
    assert {c["id"] for c in (role, *content, error, usage)} == {generation_id}
    # The error chunk goes out only after the record is written: no polling needed here.
    with OpenRouter(api_key=keys.alice, server_url=gateway.base_url, retry_config=NO_RETRIES) as sdk:
        record = sdk.generations.get_generation(id=generation_id).data
    assert record.finish_reason == "error"
    assert record.streamed is True and record.cancelled is False
    assert record.provider_responses[0].status == 502
    # It generated what it relayed ("tok tok tok": 11 characters in 3 pieces) before it died:
    # charged as estimates, as a cut stream is, and the usage chunk says so.
    assert record.tokens_completion == 3 and record.native_tokens_completion is None
    assert record.tokens_prompt and record.total_cost > 0
    assert usage["usage"]["completion_tokens"] == 3 and usage["usage"]["cost"] == record.total_cost


def test_the_openai_sdk_raises_at_the_error_chunk_after_the_relayed_ones(gateway, keys: Keys, upstream):
    upstream.set_behavior("die_mid_stream", times=1, chunks=3)
    client = openai.OpenAI(api_key=keys.alice, base_url=gateway.base_url, max_retries=0)
    chunks = iter(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
    before = [next(chunks) for _ in range(4)]
    assert [c.choices[0].delta.content for c in before] == ["", "tok", " tok", " tok"]
    with pytest.raises(openai.APIError) as caught:
        next(chunks)
    assert caught.value.message == "FakeAI: broken response body"
    assert caught.value.body["code"] == 502


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({}, 502),  # {"type": "server_error", "code": null}
        ({"code": "429", "message": "Rate limit exceeded"}, 429),  # OpenRouter: the status as a number
        ({"code": "503", "message": "The model is overloaded"}, 529),
        ({"code": "rate_limit_exceeded", "error_type": "requests"}, 429),  # OpenAI: a code string
        ({"error_type": "invalid_request_error"}, 400),
    ],
)
def test_an_error_object_mid_stream_ends_the_stream_with_its_status(
    gateway, keys: Keys, upstream, params, status
):
    upstream.set_behavior("error_mid_stream", times=1, chunks=2, **params)
    response = post(gateway, keys.alice, stream=True)
    assert response.status_code == 200
    assert response.text.endswith("data: [DONE]\n\n")
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    error_chunk = next(e for e in events if "error" in e)
    assert error_chunk["error"]["code"] == status
    assert error_chunk["error"]["metadata"]["provider_name"] == FAKE_PROVIDER
    assert error_chunk["choices"][0]["finish_reason"] == "error"
    with OpenRouter(api_key=keys.alice, server_url=gateway.base_url, retry_config=NO_RETRIES) as sdk:
        record = sdk.generations.get_generation(id=events[0]["id"]).data
    assert record.finish_reason == "error" and record.streamed is True
    assert record.provider_responses[0].status == status


@pytest.mark.parametrize(
    ("behavior", "params", "status", "error_type"),
    [
        ("error_mid_stream", {}, 502, "provider_unavailable"),
        ("error_mid_stream", {"code": "503", "message": "overloaded"}, 529, "provider_overloaded"),
        ("error_mid_stream", {"code": "rate_limit_exceeded"}, 429, "rate_limit_exceeded"),
        ("die_mid_stream", {}, 502, "provider_unavailable"),
    ],
)
def test_the_openrouter_sdk_reads_a_stream_that_fails_midway(
    gateway, keys: Keys, upstream, behavior, params, status, error_type
):
    """Its chunk model requires OpenRouter's ``error_type`` in the error's metadata: without it
    the SDK raised ResponseValidationError instead of handing the app the error."""
    upstream.set_behavior(behavior, times=1, chunks=2, **params)
    with OpenRouter(api_key=keys.alice, server_url=gateway.base_url, retry_config=NO_RETRIES) as sdk:
        chunks = list(sdk.chat.send(model=MODEL, messages=MESSAGES, stream=True))
    failed = [c for c in chunks if c.error is not None]
    assert len(failed) == 1, chunks
    error = failed[0].error
    assert error.code == status and error.metadata is not None
    assert error.metadata.error_type == error_type
    assert failed[0].choices[0].finish_reason == "error"
    assert [c.choices[0].delta.content for c in chunks[:3] if c.choices] == ["", "tok", " tok"]


@pytest.mark.parametrize(
    ("params", "native_completion"),
    [
        ({"done": "none"}, 8),  # its finish and usage came: nothing is missing
        ({"done": "none", "usage": "none"}, None),  # its finish came; its usage is estimated
    ],
)
def test_a_stream_that_closes_without_done_after_its_finish_is_whole(
    gateway, keys: Keys, upstream, params, native_completion
):
    upstream.set_behavior("ok", times=1, **params)
    response = post(gateway, keys.alice, stream=True)
    assert response.status_code == 200 and response.text.endswith("data: [DONE]\n\n")
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    assert not any("error" in e for e in events)
    with OpenRouter(api_key=keys.alice, server_url=gateway.base_url, retry_config=NO_RETRIES) as sdk:
        record = sdk.generations.get_generation(id=events[0]["id"]).data
    assert record.finish_reason == "stop" and record.total_cost > 0
    assert record.native_tokens_completion == native_completion


def test_a_caller_that_disconnects_leaves_a_cancelled_record(gateway, keys: Keys, upstream):
    upstream.set_behavior("stall_mid_stream", times=1, delay=30, chunks=2)
    with (
        httpx.Client(timeout=10) as http,
        http.stream(
            "POST",
            gateway.base_url + "/chat/completions",
            json={"model": MODEL, "messages": MESSAGES, "stream": True},
            headers={"Authorization": f"Bearer {keys.alice}"},
        ) as response,
    ):
        assert response.status_code == 200
        first = next(response.iter_lines())
        generation_id = json.loads(first.removeprefix("data: "))["id"]
    # The gateway must drop the upstream call (well before its 30 s stall ends), and record the
    # generation as cancelled.
    with OpenRouter(api_key=keys.alice, server_url=gateway.base_url, retry_config=NO_RETRIES) as sdk:
        record = poll_record(sdk, generation_id, within=5)
    assert record.cancelled is True and record.streamed is True
    stats = upstream.wait_until(lambda s: s["open_streams"] == 0, within=5)
    assert stats["cancelled_streams"] == 1
    assert stats["completed_streams"] == 0
