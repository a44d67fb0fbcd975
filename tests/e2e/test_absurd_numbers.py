"""Numbers past what the ledger's 64-bit integers hold, from an upstream or a caller: never a
500 with nothing recorded. An impossible usage is not believed (the answer is charged estimates,
as one without usage); a worst case beyond every limit is a 402. On both databases (PostgreSQL
refused the overflowing values: "value out of int64 range")."""

from __future__ import annotations

import uuid
from typing import Any

import openai
import pytest
from openrouter import OpenRouter

from genledger.core.money import MAX_PRICE_PER_MILLION
from genledger.core.usage import MAX_REPORTED_TOKENS
from genledger.ledger import Ledger
from tests.e2e.conftest import MODEL, gateway_settings
from tests.fakes import FakeOpenAIInThread
from tests.gateway import GatewayServer
from tests.ledger.records import charged_to

MESSAGES = [{"role": "user", "content": "Tell me about the sea, in four words."}]
DEAR = f"{MAX_PRICE_PER_MILLION}"


@pytest.fixture(scope="module")
def settings(database_url: str, upstream: FakeOpenAIInThread) -> dict[str, Any]:
    settings = gateway_settings(database_url, upstream.api_url)
    prices = {"prompt_price": DEAR, "completion_price": DEAR}  # the dearest the catalog takes
    settings["models"][MODEL] = {"provider": "fake", "upstream_model": "fast", **prices}
    return settings


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("reported", [MAX_REPORTED_TOKENS + 1, 10**13])
async def test_an_impossible_usage_is_estimated_not_a_500(
    ledger: Ledger, settings: dict[str, Any], upstream: FakeOpenAIInThread, stream: bool, reported: int
):
    key, secret = await ledger.keys.create(f"absurd-{uuid.uuid4().hex[:8]}", limit_pico=None)
    upstream.set_behavior("ok", times=1, prompt_tokens=reported, tokens=4)
    with GatewayServer.build(**settings) as gateway:
        client = openai.OpenAI(api_key=secret, base_url=gateway.base_url, max_retries=0, timeout=10)
        if stream:
            chunks = list(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
            generation_id, told = chunks[0].id, chunks[-1].usage
        else:
            answer = client.chat.completions.create(model=MODEL, messages=MESSAGES)
            generation_id, told = answer.id, answer.usage
        client.close()
        with OpenRouter(api_key=secret, server_url=gateway.base_url) as sdk:
            record = sdk.generations.get_generation(id=generation_id).data
    assert told is not None and told.prompt_tokens < 100 and told.completion_tokens == 4
    assert (record.tokens_prompt, record.tokens_completion) == (told.prompt_tokens, 4)
    assert record.native_tokens_prompt is None  # the provider's count was not believed
    assert (await ledger.keys.find_by_id(key.id)).usage_pico == await charged_to(ledger, key.id) > 0


async def test_a_worst_case_beyond_every_limit_is_a_402(ledger: Ledger, settings: dict[str, Any]):
    """128 choices of 10M tokens at 10,000 USD per million: 1.28e19 picodollars, past 2**63."""
    _, secret = await ledger.keys.create(f"absurd-{uuid.uuid4().hex[:8]}", limit_pico=10**12)
    with GatewayServer.build(**settings) as gateway:
        client = openai.OpenAI(api_key=secret, base_url=gateway.base_url, max_retries=0, timeout=10)
        with pytest.raises(openai.APIStatusError) as refused:
            client.chat.completions.create(model=MODEL, messages=MESSAGES, n=128, max_tokens=10_000_000)
        client.close()
    assert refused.value.status_code == 402, refused.value.message
    assert "may cost up to $12800000.45" in refused.value.message
    assert "Ask for fewer choices than n=128" in refused.value.message
