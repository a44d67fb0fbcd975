"""The edge's parsing of the provider object, embeddings and prompt completion bodies."""

from __future__ import annotations

import base64
import struct
from decimal import Decimal

import orjson
import pytest

from genledger.api.embeddings_wire import embeddings_json, parse_embedding_request
from genledger.api.prompt_wire import parse_prompt_request
from genledger.api.wire import parse_chat_request
from genledger.core.chat import MaxPrice
from genledger.core.embeddings import EmbeddingAnswer, Embeddings
from genledger.core.usage import Usage
from genledger.errors import BadRequest

CHAT = {"model": "m/one", "messages": [{"role": "user", "content": "x"}]}


def chat_with(provider) -> bytes:
    return orjson.dumps({**CHAT, "provider": provider})


def test_routing_fields_of_the_provider_object_are_parsed():
    prefs = parse_chat_request(
        chat_with(
            {
                "sort": "latency",
                "max_price": {"prompt": 1, "completion": "2.5", "request": None},
                "require_parameters": True,
                "order": ["a"],
            }
        )
    ).provider
    assert (prefs.sort, prefs.sort_partition, prefs.require_parameters, prefs.order) == (
        "latency",
        "model",
        True,
        ("a",),
    )
    assert prefs.max_price == MaxPrice(prompt=Decimal("1"), completion=Decimal("2.5"))
    sorted_ = parse_chat_request(chat_with({"sort": {"by": "price", "partition": "none"}})).provider
    assert (sorted_.sort, sorted_.sort_partition) == ("price", "none")


@pytest.mark.parametrize(
    ("provider", "param"),
    [
        ({"data_collection": "deny"}, "provider.data_collection"),
        ({"zdr": True}, "provider.zdr"),
        ({"quantizations": ["fp8"]}, "provider.quantizations"),
        ({"sort": "exacto"}, "provider.sort"),
        ({"sort": {"by": "price", "partition": "all"}}, "provider.sort.partition"),
        ({"sort": {"by": "price", "weights": 1}}, "provider.sort.weights"),
        ({"max_price": {"prompt": "cheap"}}, "provider.max_price.prompt"),
        ({"max_price": {"prompt": "NaN"}}, "provider.max_price.prompt"),
        ({"max_price": {"video": 1}}, "provider.max_price.video"),
        ({"max_price": 3}, "provider.max_price"),
        ({"require_parameters": "yes"}, "provider.require_parameters"),
        ({"allow_fallbacks": 1}, "provider.allow_fallbacks"),
    ],
)
def test_an_unknown_or_bad_provider_field_is_a_400_naming_it(provider, param):
    with pytest.raises(BadRequest) as refused:
        parse_chat_request(chat_with(provider))
    assert refused.value.status == 400
    assert refused.value.metadata == {"param": param}
    assert param in refused.value.message or param.rsplit(".", 1)[-1] in refused.value.message


def test_a_null_provider_field_asks_for_nothing():
    assert parse_chat_request(chat_with({"zdr": None, "sort": None})).provider.sort is None


@pytest.mark.parametrize(
    ("value", "inputs"),
    [
        ("hello", ("hello",)),
        (["a", "b"], ("a", "b")),
        ([1, 2, 3], ((1, 2, 3),)),
        ([[1], [2, 3]], ((1,), (2, 3))),
        # The openrouter SDK types token arrays as numbers and sends 1.0: the same tokens.
        ([1.0, 2.0, 3], ((1, 2, 3),)),
        ([[1.0], [2, 3.0]], ((1,), (2, 3))),
    ],
)
def test_embedding_inputs(value, inputs):
    request, encoding = parse_embedding_request(orjson.dumps({"model": "m/e", "input": value}))
    assert (request.inputs, encoding) == (inputs, "float")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": ["a", 1]}, "input"),
        ({"input": [1.5, 2]}, "input"),
        ({"input": [[1], [-1.0]]}, "input"),
        ({"input": [[]]}, "input"),
        ({"input": [{"content": [{"type": "text", "text": "x"}]}]}, "input[0]"),
        ({"input": "x", "dimensions": 0}, "dimensions"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "x", "input_type": 3}, "input_type"),
        ({"input": "x", "stream": True}, "stream"),
        ({"input": "x", "provider": {"zdr": True}}, "provider.zdr"),
    ],
)
def test_bad_embedding_bodies_are_a_400_naming_the_field(body, param):
    with pytest.raises(BadRequest) as refused:
        parse_embedding_request(orjson.dumps({"model": "m/e", **body}))
    assert refused.value.metadata == {"param": param}


def test_embeddings_render_floats_or_little_endian_float32_base64():
    answer = EmbeddingAnswer(
        "gen-1", "m/e", "P", Embeddings(((0.5, -1.0),), Usage(prompt_tokens=3)), 3_000_000
    )
    as_floats = embeddings_json(answer, "float")
    assert as_floats["data"] == [{"object": "embedding", "index": 0, "embedding": [0.5, -1.0]}]
    assert as_floats["usage"] == {"prompt_tokens": 3, "total_tokens": 3, "cost": 0.000003, "is_byok": False}
    encoded = embeddings_json(answer, "base64")["data"][0]["embedding"]
    assert struct.unpack("<2f", base64.b64decode(encoded)) == (0.5, -1.0)


def test_prompt_bodies():
    request = parse_prompt_request(
        orjson.dumps({"model": "m", "prompt": ["Once"], "max_tokens": 5, "temperature": 0.1, "echo": False})
    )
    assert (request.prompt, request.max_tokens, request.params) == (
        "Once",
        5,
        {"temperature": 0.1, "echo": False},
    )
    for body, param in [
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"prompt": [1, 2]}, "prompt"),
        ({"prompt": "a", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "a", "temperature": "hot"}, "temperature"),
        ({"prompt": "a", "stream": "yes"}, "stream"),
        ({"prompt": "a", "stream_options": {"x": 1}}, "stream_options"),
        ({"prompt": "a", "messages": []}, "messages"),
        ({"prompt": "a", "n": 0}, "n"),
        ({"prompt": "a", "best_of": 1000}, "best_of"),
    ]:
        with pytest.raises(BadRequest) as refused:
            parse_prompt_request(orjson.dumps({"model": "m", **body}))
        assert refused.value.metadata == {"param": param}, body
