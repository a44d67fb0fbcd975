"""A stream the caller leaves before its provider's usage chunk: charged for what it relayed.

The provider bills what it generated up to the cut; the record says so (estimated counts,
no native completion counts), and the key pays for it. Otherwise a caller could read a whole
answer, leave before its last chunk, and never meet its key's limit. Seen with the official
``openai`` SDK streaming and the ``openrouter`` SDK reading the record, on both databases.
A caller that leaves before a whole (not streamed) answer comes has it recorded in full.
"""

from __future__ import annotations

import socket
import uuid
from typing import Any

import openai
import orjson
import pytest
from openrouter import OpenRouter

from genledger.api.wire import parse_chat_request
from genledger.core import estimates
from genledger.core.credits import prompt_bound
from genledger.ledger import KeyRecord, Ledger
from tests.deadlines import eventually
from tests.e2e.conftest import MODEL, gateway_settings
from tests.fakes import FakeOpenAIInThread
from tests.gateway import GatewayServer
from tests.ledger.records import charged_to

PROMPT_PICO, COMPLETION_PICO = 1_000_000, 2_000_000  # per token, from the prices below
MESSAGES = [{"role": "user", "content": "Tell me about the sea, in four words."}]
MAX_TOKENS = 4
REQUEST = parse_chat_request(
    orjson.dumps({"model": MODEL, "messages": MESSAGES, "max_tokens": MAX_TOKENS, "stream": True})
)
PROMPT = estimates.prompt_tokens(REQUEST)
CUT_COST = PROMPT * PROMPT_PICO + MAX_TOKENS * COMPLETION_PICO  # a stream cut after its last word
WORST_CASE = prompt_bound(REQUEST) * PROMPT_PICO + MAX_TOKENS * COMPLETION_PICO  # its reservation


@pytest.fixture(scope="module")
def settings(database_url: str, upstream: FakeOpenAIInThread) -> dict[str, Any]:
    settings = gateway_settings(database_url, upstream.api_url)
    prices = {"prompt_price": "1", "completion_price": "2"}
    settings["models"][MODEL] = {"provider": "fake", "upstream_model": "fast", **prices}
    return settings


async def new_key(ledger: Ledger, limit_pico: int) -> tuple[KeyRecord, str]:
    return await ledger.keys.create(f"cut-{uuid.uuid4().hex[:8]}", limit_pico=limit_pico)


def read_then_leave(gateway: GatewayServer, secret: str, pieces: int) -> str:
    """Stream a completion, read ``pieces`` of content, and leave; the generation's id."""
    client = openai.OpenAI(api_key=secret, base_url=gateway.base_url, max_retries=0, timeout=10)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=MAX_TOKENS,
        stream=True,  # type: ignore[arg-type]
    )
    read = 0
    for chunk in stream:
        read += bool(chunk.choices and chunk.choices[0].delta.content)
        if read == pieces:
            break
    stream.close()
    client.close()
    return chunk.id


async def settled(ledger: Ledger, key: KeyRecord) -> bool:
    return (await ledger.keys.find_by_id(key.id)).reserved_pico == 0


async def test_a_stream_left_before_its_usage_is_recorded_and_charged_for_what_it_relayed(
    ledger: Ledger, settings: dict[str, Any], upstream: FakeOpenAIInThread
):
    key, secret = await new_key(ledger, 10**12)
    # Every word of the answer, then a stall before the finish and usage chunks.
    upstream.set_behavior("stall_mid_stream", times=1, delay=30, chunks=MAX_TOKENS)
    with GatewayServer.build(**settings) as gateway:
        generation_id = read_then_leave(gateway, secret, MAX_TOKENS)
        assert await eventually(lambda: settled(ledger, key)), "the cut stream was never settled"
        upstream.wait_until(lambda s: s["open_streams"] == 0 and s["cancelled_streams"] == 1, within=5)
        with OpenRouter(api_key=secret, server_url=gateway.base_url) as sdk:
            record = sdk.generations.get_generation(id=generation_id).data
    assert (record.cancelled, record.streamed) == (True, True)
    # "tok tok tok tok": 15 characters in 4 pieces; the prompt at a quarter of its bound.
    assert (record.tokens_prompt, record.tokens_completion) == (PROMPT, MAX_TOKENS)
    assert record.native_tokens_prompt is None and record.native_tokens_completion is None
    assert record.total_cost == record.usage == pytest.approx(CUT_COST / 10**12)
    state = await ledger.keys.find_by_id(key.id)
    assert state.usage_pico == CUT_COST == await charged_to(ledger, key.id)


async def test_a_keys_limit_holds_against_streams_left_at_their_last_chunk(
    ledger: Ledger, settings: dict[str, Any], upstream: FakeOpenAIInThread
):
    # Room for three cut streams: the third is admitted with exactly its worst case left.
    key, secret = await new_key(ledger, WORST_CASE + 2 * CUT_COST)
    upstream.set_behavior("stall_mid_stream", times=10, delay=30, chunks=MAX_TOKENS)
    served = 0
    with GatewayServer.build(**settings) as gateway:
        for _ in range(10):
            try:
                read_then_leave(gateway, secret, MAX_TOKENS)
            except openai.APIStatusError as refused:
                assert refused.status_code == 402, refused.message
                break
            served += 1
            assert await eventually(lambda: settled(ledger, key)), "a cut stream was never settled"
    assert served == 3  # and the fourth is refused: none was free
    state = await ledger.keys.find_by_id(key.id)
    assert state.usage_pico == 3 * CUT_COST == await charged_to(ledger, key.id)


async def test_a_caller_that_leaves_a_whole_answer_before_it_comes_still_has_it_recorded(
    ledger: Ledger, settings: dict[str, Any], upstream: FakeOpenAIInThread
):
    """Not streamed: the provider answers (and bills) whether or not the caller waited.

    The caller leaves once the provider has the request (a caller gone before the gateway read
    its body is a 499 that calls nobody)."""
    key, secret = await new_key(ledger, 10**12)
    upstream.set_behavior("ok", times=1, delay_ms=500)
    with GatewayServer.build(**settings) as gateway:
        body = orjson.dumps({"model": MODEL, "messages": MESSAGES, "max_tokens": MAX_TOKENS})
        head = (
            f"POST /api/v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
            f"Authorization: Bearer {secret}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as caller:
            caller.sendall(head.encode() + body)
            upstream.wait_until(lambda s: s["requests"] == 1, within=5)
        # Gone, half a second before the provider answers.

        async def recorded() -> bool:
            return (
                await charged_to(ledger, key.id) > 0
                and (await ledger.keys.find_by_id(key.id)).reserved_pico == 0
            )

        assert await eventually(recorded, within=5), "the answer the caller left was not recorded"
    assert upstream.stats()["cancelled_requests"] == 0  # the gateway waited for it
    state = await ledger.keys.find_by_id(key.id)
    assert state.usage_pico == await charged_to(ledger, key.id)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_an_answer_its_provider_reports_no_usage_for_is_charged_estimates(
    ledger: Ledger, settings: dict[str, Any], upstream: FakeOpenAIInThread, stream: bool
):
    """Some OpenAI-compatible servers leave usage out. The answer still cost its provider, so
    it is charged (and the caller told) estimates, as a cut stream is: never for free."""
    key, secret = await new_key(ledger, 10**12)
    upstream.set_behavior("ok", times=1, usage="none")
    with GatewayServer.build(**settings) as gateway:
        client = openai.OpenAI(api_key=secret, base_url=gateway.base_url, max_retries=0, timeout=10)
        arguments: dict[str, Any] = {"model": MODEL, "messages": MESSAGES, "max_tokens": MAX_TOKENS}
        if stream:
            chunks = list(client.chat.completions.create(**arguments, stream=True))
            generation_id, told = chunks[0].id, chunks[-1].usage
        else:
            answer = client.chat.completions.create(**arguments)
            generation_id, told = answer.id, answer.usage
        client.close()
        with OpenRouter(api_key=secret, server_url=gateway.base_url) as sdk:
            record = sdk.generations.get_generation(id=generation_id).data
    # "tok tok tok tok": 15 characters; the prompt at a quarter of its bound.
    assert (record.tokens_prompt, record.tokens_completion) == (PROMPT, MAX_TOKENS)
    assert told is not None and (told.prompt_tokens, told.completion_tokens) == (PROMPT, MAX_TOKENS)
    assert record.native_tokens_prompt is None and record.native_tokens_completion is None
    assert (record.cancelled, record.finish_reason) == (False, "length")
    assert record.total_cost == pytest.approx(CUT_COST / 10**12)
    state = await ledger.keys.find_by_id(key.id)
    assert state.usage_pico == CUT_COST == await charged_to(ledger, key.id)
    assert state.reserved_pico == 0
