"""Idempotent retries against a real gateway on SQLite and PostgreSQL: a retry during the first
call is a 409 with Retry-After, after it the same answer (same generation id) with no second
upstream call and one charge; another body is a 422. Streamed and not."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from genledger.core.generation import Generation
from genledger.core.stores import GenerationFilter
from genledger.ledger import Ledger
from tests.e2e.conftest import MODEL, gateway_settings
from tests.fakes import FakeOpenAIInThread
from tests.gateway import GatewayServer, create_key, run_with_ledger

STALL_S = 3.0  # the upstream's delay: long enough for a retry to arrive while it runs
DEADLINE_S = 30.0


@pytest.fixture(scope="module")
def served(database_url: str) -> Iterator[tuple[GatewayServer, FakeOpenAIInThread]]:
    with FakeOpenAIInThread() as upstream:
        settings = gateway_settings(database_url, upstream.api_url)
        settings["providers"]["fake"]["timeout"] = DEADLINE_S
        with GatewayServer.build(**settings) as gateway:
            yield gateway, upstream


def post(gateway: GatewayServer, secret: str, body: dict[str, Any], key: str) -> httpx.Response:
    return httpx.post(
        gateway.base_url + "/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": key},
        timeout=DEADLINE_S,
    )


def charged(database_url: str, secret_name: str) -> tuple[list[Generation], int]:
    async def read(ledger: Ledger) -> tuple[list[Generation], int]:
        key = await ledger.keys.find_by_name(secret_name)
        assert key is not None
        page = await ledger.generations.list(GenerationFilter(key_id=key.id), limit=100)
        return page.items, key.usage_pico

    return run_with_ledger(database_url, read)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_retry_during_and_after_the_first_call_reaches_the_upstream_once_and_is_charged_once(
    served: tuple[GatewayServer, FakeOpenAIInThread], database_url: str, stream: bool
):
    gateway, upstream = served
    upstream.reset()
    name = f"idem-{uuid.uuid4().hex[:8]}"
    secret = create_key(database_url, name, limit_pico=10**12)
    key = f"retry-{uuid.uuid4()}"
    body = {"model": MODEL, "messages": [{"role": "user", "content": "once"}], "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
        upstream.set_behavior("stall_mid_stream", times=1, delay=STALL_S, chunks=1)
    else:
        upstream.set_behavior("slow", times=1, delay=STALL_S)
    first: dict[str, httpx.Response] = {}
    thread = threading.Thread(target=lambda: first.setdefault("r", post(gateway, secret, body, key)))
    thread.start()
    try:
        upstream.wait_until(lambda s: s["requests"] == 1, within=DEADLINE_S)
        during = post(gateway, secret, body, key)
        assert during.status_code == 409, during.text
        assert during.headers["Retry-After"] == "1"
        assert "still running" in during.json()["error"]["message"]
    finally:
        thread.join(DEADLINE_S)
    original = first["r"]
    assert original.status_code == 200, original.text
    after = post(gateway, secret, body, key)
    assert after.status_code == 200
    assert after.content == original.content  # the same answer, the same generation id
    assert after.headers["Idempotent-Replayed"] == "true"
    assert after.headers["content-type"] == original.headers["content-type"]
    # The same document serialized anew (members reordered, other spacing) is the same call.
    reordered = httpx.post(
        gateway.base_url + "/chat/completions",
        content=orjson.dumps(dict(reversed(body.items()))).replace(b",", b", "),
        headers={
            "Authorization": f"Bearer {secret}",
            "Idempotency-Key": key,
            "Content-Type": "application/json",
        },
        timeout=DEADLINE_S,
    )
    assert reordered.status_code == 200 and reordered.content == original.content
    other = post(gateway, secret, {**body, "messages": [{"role": "user", "content": "twice"}]}, key)
    assert other.status_code == 422
    assert upstream.stats()["requests"] == 1
    records, usage = charged(database_url, name)
    assert len(records) == 1 and usage == records[0].charge_pico > 0
    assert records[0].id in original.text


def test_the_openai_sdk_retries_with_its_idempotency_key_and_gets_the_first_answer(
    served: tuple[GatewayServer, FakeOpenAIInThread], database_url: str
):
    gateway, upstream = served
    upstream.reset()
    name = f"idem-{uuid.uuid4().hex[:8]}"
    secret = create_key(database_url, name)
    client = openai.OpenAI(api_key=secret, base_url=gateway.base_url, max_retries=0)
    messages: Any = [{"role": "user", "content": "hi"}]
    key = {"Idempotency-Key": f"sdk-{uuid.uuid4()}"}
    one = client.chat.completions.create(model=MODEL, messages=messages, extra_headers=key)
    two = client.chat.completions.create(model=MODEL, messages=messages, extra_headers=key)
    assert one.id == two.id and one.usage == two.usage
    assert upstream.stats()["requests"] == 1
    bad = httpx.post(
        gateway.base_url + "/chat/completions",
        json={"model": MODEL, "messages": messages},
        headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": ""},
    )
    assert bad.status_code == 400 and "Idempotency-Key" in bad.json()["error"]["message"]


def test_a_stream_its_caller_cut_short_frees_its_key_and_a_retry_gets_a_whole_answer(
    served: tuple[GatewayServer, FakeOpenAIInThread], database_url: str
):
    """The caller never had the whole answer: replaying the part it had would end without
    [DONE] every time. The cut part stays charged; the retry runs, and is charged, afresh."""
    gateway, upstream = served
    upstream.reset()
    name = f"idem-{uuid.uuid4().hex[:8]}"
    secret = create_key(database_url, name, limit_pico=10**12)
    key = f"cut-{uuid.uuid4()}"
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "cut me short"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    upstream.set_behavior("stall_mid_stream", times=1, delay=STALL_S, chunks=1)
    headers = {"Authorization": f"Bearer {secret}", "Idempotency-Key": key}
    with (
        httpx.Client(timeout=DEADLINE_S) as http,
        http.stream("POST", gateway.base_url + "/chat/completions", json=body, headers=headers) as cut,
    ):
        assert cut.status_code == 200
        received = next(cut.iter_raw())  # the first frame, then the caller goes away
    assert b"data: " in received

    def recorded() -> list[Generation]:
        return charged(database_url, name)[0]

    deadline = threading.Event()
    for _ in range(int(DEADLINE_S / 0.1)):
        if recorded():
            break
        deadline.wait(0.1)
    records, usage = charged(database_url, name)
    assert len(records) == 1 and records[0].cancelled and records[0].streamed
    assert usage == records[0].charge_pico
    # The retry runs (once the cut call has freed the key, in the background) and is whole.
    for _ in range(int(DEADLINE_S / 0.1)):
        retry = post(gateway, secret, body, key)
        if retry.status_code != 409:
            break
        deadline.wait(0.1)
    assert retry.status_code == 200, retry.text
    assert "Idempotent-Replayed" not in retry.headers
    assert retry.text.endswith("data: [DONE]\n\n") and records[0].id not in retry.text
    assert upstream.stats()["requests"] == 2
    after, usage_after = charged(database_url, name)
    assert len(after) == 2 and usage_after == sum(r.charge_pico for r in after)
    # Now whole, it is kept: a third call is the second's answer again, charged nothing more.
    again = post(gateway, secret, body, key)
    assert again.headers["Idempotent-Replayed"] == "true" and again.content == retry.content
    assert upstream.stats()["requests"] == 2


def test_a_stream_its_provider_broke_frees_its_key_and_a_retry_runs_afresh(
    served: tuple[GatewayServer, FakeOpenAIInThread], database_url: str
):
    """The stream ended with an error chunk: not a whole answer, so not one to replay."""
    gateway, upstream = served
    upstream.reset()
    name = f"idem-{uuid.uuid4().hex[:8]}"
    secret = create_key(database_url, name, limit_pico=10**12)
    key = f"broken-{uuid.uuid4()}"
    body = {"model": MODEL, "messages": [{"role": "user", "content": "break"}], "stream": True}
    upstream.set_behavior("die_mid_stream", times=1, chunks=2)
    broken = post(gateway, secret, body, key)
    assert broken.status_code == 200 and '"finish_reason":"error"' in broken.text
    retry = post(gateway, secret, body, key)
    assert retry.status_code == 200 and "Idempotent-Replayed" not in retry.headers
    assert '"finish_reason":"error"' not in retry.text and retry.text.endswith("data: [DONE]\n\n")
    assert upstream.stats()["requests"] == 2
    again = post(gateway, secret, body, key)  # whole now: kept, and replayed
    assert again.headers["Idempotent-Replayed"] == "true" and again.content == retry.content
    assert upstream.stats()["requests"] == 2
