"""The OpenAI-compatible adapter's embeddings and prompt completions, against the fake upstream,
and the pure readers of their wire format; the demo provider's answers to both."""

from __future__ import annotations

import array
import base64
import math

import pytest

from genledger.config import ProviderConfig
from genledger.core.embeddings import EmbeddingRequest
from genledger.core.events import Finish, Identified, TextDelta, UsageReport
from genledger.core.failures import FailureKind, UpstreamFailure
from genledger.core.prompt import PromptRequest
from genledger.core.usage import Usage
from genledger.providers.base import EmbeddingCall, PromptCall
from genledger.providers.demo import DemoProvider, demo_vector
from genledger.providers.openai_compat import (
    OpenAICompatProvider,
    completion_from_text,
    embeddings_from_openai,
    text_chunk_events,
)
from tests.fakes import run_fake_openai
from tests.fakes.openai_upstream import fake_vector


def provider(url: str) -> OpenAICompatProvider:
    return OpenAICompatProvider("fake", ProviderConfig(kind="openai", base_url=url, display_name="Fake"))


async def test_embeddings_and_prompt_completions_against_the_fake():
    async with run_fake_openai() as fake:
        adapter = provider(fake.api_url)
        try:
            result = await adapter.embed(
                EmbeddingCall(
                    EmbeddingRequest("m", ("abcdefgh", "xy"), dimensions=4, params={"input_type": "q"}), "e"
                )
            )
            assert result.vectors == (tuple(fake_vector('"abcdefgh"', 4)), tuple(fake_vector('"xy"', 4)))
            assert result.usage == Usage(prompt_tokens=3)
            sent = fake.requests()[-1]["json"]
            assert (sent["input_type"], sent["encoding_format"], sent["dimensions"]) == ("q", "float", 4)

            whole = await adapter.complete_prompt(
                PromptCall(PromptRequest("m", "Once", max_tokens=3, user="u"), "p")
            )
            assert whole.choices[0].content == " tok tok tok" and whole.finish_reason == "length"
            assert whole.usage == Usage(prompt_tokens=1, completion_tokens=3)
            assert fake.requests()[-1]["json"]["user"] == "u"

            stream = await adapter.stream_prompt(PromptCall(PromptRequest("m", "Once", max_tokens=2), "p"))
            events = [event async for event in stream]
            assert [e.text for e in events if isinstance(e, TextDelta)] == [" tok", " tok"]
            assert [e.usage for e in events if isinstance(e, UsageReport)] == [Usage(1, 2)]
            assert fake.requests()[-1]["json"]["stream_options"] == {"include_usage": True}

            fake.set_behavior("status", times=1, status=500)
            with pytest.raises(UpstreamFailure) as failed:
                await adapter.embed(EmbeddingCall(EmbeddingRequest("m", ("x",)), "e"))
            assert failed.value.kind is FailureKind.SERVER_ERROR
            fake.set_behavior("garbage", times=2)
            with pytest.raises(UpstreamFailure) as garbage:
                await adapter.embed(EmbeddingCall(EmbeddingRequest("m", ("x",)), "e"))
            assert garbage.value.kind is FailureKind.INVALID_RESPONSE
            with pytest.raises(UpstreamFailure) as garbage:
                await adapter.complete_prompt(PromptCall(PromptRequest("m", "x"), "p"))
            assert garbage.value.kind is FailureKind.INVALID_RESPONSE
        finally:
            await adapter.aclose()


def test_embeddings_are_read_in_index_order_from_floats_or_base64():
    packed = base64.b64encode(array.array("f", [0.5, 2.0]).tobytes()).decode()
    body = {
        "data": [{"index": 1, "embedding": packed}, {"index": 0, "embedding": [1, -1.5]}],
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
        "id": "e-1",
    }
    result = embeddings_from_openai(body, 2)
    assert result.vectors == ((1.0, -1.5), (0.5, 2.0))
    assert (result.usage, result.upstream_id) == (Usage(prompt_tokens=4), "e-1")


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"data": None},
        {"data": ["x"]},
        {"data": [{"index": 0, "embedding": ["a"]}]},
        {"data": [{"index": 0, "embedding": [True]}]},
        {"data": [{"index": 0, "embedding": [1.0]}]},  # one vector for two inputs
        {"data": [{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [1.0]}]},
    ],
)
def test_a_malformed_embeddings_body_is_refused(body):
    with pytest.raises(ValueError):
        embeddings_from_openai(body, 2)


@pytest.mark.parametrize("body", [[], {"choices": []}, {"choices": ["x"]}])
def test_a_malformed_text_completion_is_refused(body):
    with pytest.raises(ValueError):
        completion_from_text(body)


def test_text_chunks_become_events():
    assert text_chunk_events(
        {"id": "c-1", "choices": [{"index": 0, "text": "hi", "finish_reason": None}, "junk"]}, None
    ) == [Identified("c-1"), TextDelta("hi", 0, None)]
    assert text_chunk_events({"id": "c-1", "choices": [{"text": "", "finish_reason": "stop"}]}, "c-1") == [
        Finish("stop", "stop", 0)
    ]
    assert text_chunk_events({"choices": None, "usage": {"prompt_tokens": 2}}, "c-1") == [
        UsageReport(Usage(2))
    ]


async def test_the_demo_embeds_deterministically_and_completes_prompts():
    demo = DemoProvider("demo", ProviderConfig(kind="demo"))
    result = await demo.embed(
        EmbeddingCall(EmbeddingRequest("d", ("hello world", (1, 2, 3)), dimensions=12), "d")
    )
    assert result.vectors[0] == demo_vector("hello world", 12) and len(result.vectors[1]) == 12
    assert math.isclose(sum(v * v for v in result.vectors[1]), 1.0)
    assert result.usage == Usage(prompt_tokens=2 + 3)
    default = await demo.embed(EmbeddingCall(EmbeddingRequest("d", ("x",)), "d"))
    assert default.vectors == (demo_vector("x", 256),)
    whole = await demo.complete_prompt(
        PromptCall(PromptRequest("d", "The end of the story", max_tokens=5), "d")
    )
    assert whole.finish_reason == "length" and whole.usage == Usage(5, 5)
    stream = await demo.stream_prompt(PromptCall(PromptRequest("d", "Go"), "d"))
    events = [event async for event in stream]
    assert sum(isinstance(e, TextDelta) for e in events) == 40 and events[-1] == Finish("stop", "stop")
