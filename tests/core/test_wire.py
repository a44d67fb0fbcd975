import orjson
import pytest

from genledger.api.generation_wire import generation_json
from genledger.api.wire import parse_chat_request, parse_generation_id
from genledger.core.generation import Generation
from genledger.core.ids import hash_key, new_api_key, new_generation_id
from genledger.errors import BadRequest
from tests.contract import GENERATION_KEYS, REQUIRED_KEYS

CONTRACT_KEYS = set(GENERATION_KEYS)


def body(**fields):
    base = {"model": "m/x", "messages": [{"role": "user", "content": "hi"}]}
    base.update(fields)
    return orjson.dumps({k: v for k, v in base.items() if v is not ...})


def test_a_full_request_parses():
    request = parse_chat_request(
        body(
            stream=True,
            max_tokens=7,
            user="u1",
            temperature=0.2,
            tools=[],
            provider={"order": ["a"]},
            stream_options={"include_usage": True},
            usage={"include": True},
            transforms=[],
            plugins=[],
            route="fallback",
            store=False,
        )
    )
    assert request.model == "m/x"
    assert request.stream is True
    assert request.max_tokens == 7
    assert request.user == "u1"
    assert request.params == {"temperature": 0.2, "tools": []}


def test_max_completion_tokens_is_accepted():
    assert parse_chat_request(body(max_completion_tokens=3)).max_tokens == 3
    assert parse_chat_request(body(max_completion_tokens=3, max_tokens=3)).max_tokens == 3


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        # Nothing is dropped unseen: a field the gateway neither passes on nor honours is named.
        ({"foo": 1}, "foo"),
        ({"functions": [{"name": "f"}], "function_call": "auto"}, "functions"),
        ({"service_tier": "flex"}, "service_tier"),
        ({"web_search_options": {}}, "web_search_options"),
        # Taken as they are only where what they ask is what the gateway always does.
        ({"plugins": [{"id": "web"}]}, "plugins"),
        ({"plugins": "x"}, "plugins"),
        ({"transforms": ["middle-out"]}, "transforms"),
        ({"transforms": 5}, "transforms"),
        ({"route": "cheapest"}, "route"),
        ({"usage": "x"}, "usage"),
        ({"usage": {"include": "yes"}}, "usage"),
        ({"stream_options": "x"}, "stream_options"),
        ({"stream_options": {"include_obfuscation": True}}, "stream_options"),
        ({"store": True}, "store"),
        # Each token limit under its own name, and two that disagree refused.
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"max_completion_tokens": "x"}, "max_completion_tokens"),
        ({"max_tokens": 5, "max_completion_tokens": 9}, "max_completion_tokens"),
    ],
)
def test_a_field_not_honoured_is_refused_by_name(fields, param):
    with pytest.raises(BadRequest) as caught:
        parse_chat_request(body(**fields))
    assert caught.value.status == 400
    assert caught.value.metadata == {"param": param}
    assert f"'{param}'" in caught.value.message


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{nope", "not valid JSON"),
        (b"[]", "JSON object"),
        (body(model=...), "'model'"),
        (body(model=""), "'model'"),
        (body(messages=[]), "'messages'"),
        (body(messages="hi"), "'messages'"),
        (body(messages=["hi"]), "messages[0]"),
        (body(messages=[{"role": "wizard", "content": "x"}]), "messages[0].role"),
        (body(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
        (body(stream="yes"), "'stream'"),
        (body(max_tokens=0), "'max_tokens'"),
        (body(max_tokens=True), "'max_tokens'"),
        (body(max_tokens="10"), "'max_tokens'"),
        (body(max_tokens=10**13), "'max_tokens'"),
        (body(models="m/x"), "'models'"),
        (body(models=["m/" + str(i) for i in range(20)]), "'models'"),
        (body(provider="fast"), "'provider'"),
        (body(provider={"order": "a"}), "'provider.order'"),
        (body(provider={"allow_fallbacks": "no"}), "'provider.allow_fallbacks'"),
        (body(user=5), "'user'"),
        (body(temperature="hot"), "'temperature'"),
        (body(temperature=True), "'temperature'"),
        (body(n=0), "'n' must be an integer from 1 to 128"),
        (body(n=129), "'n' must be an integer from 1 to 128"),
        (body(n=True), "'n' must be integer"),
        (body(stream_options={"include_obfuscation": True}), "'stream_options' may only set include_usage"),
        (body(service_tier="flex"), "'service_tier' may only be 'auto' or 'default'"),
        (body(metadata={"team": "a\x00b"}), "NUL"),
        (body(metadata={"te\x00am": "a"}), "NUL"),
    ],
)
def test_bad_requests_name_the_problem(raw, message):
    with pytest.raises(BadRequest) as caught:
        parse_chat_request(raw)
    assert message in caught.value.message
    assert caught.value.status == 400


@pytest.mark.parametrize("value", [None, "", "   ", "x" * 201])
def test_bad_generation_ids(value):
    with pytest.raises(BadRequest):
        parse_generation_id(value)


def test_generation_json_has_every_contract_key_and_required_ones_set():
    from datetime import UTC, datetime

    data = generation_json(
        Generation(
            id="gen-1",
            key_id="k",
            created_at=datetime(2024, 7, 15, 23, 33, 19, 433273, tzinfo=UTC),
            model="m",
        )
    )
    assert set(data) >= CONTRACT_KEYS
    assert data["created_at"] == "2024-07-15T23:33:19.433273+00:00"
    for required in REQUIRED_KEYS:
        assert data[required] is not None


def test_ids_are_unguessable_and_keys_hash():
    ids = {new_generation_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.startswith("gen-") and len(i) == 39 for i in ids)
    key = new_api_key()
    assert key.startswith("sk-gl-") and len(key) >= len("sk-gl-") + 32
    assert hash_key(key) != key and len(hash_key(key)) == 64


def test_asking_for_no_stream_obfuscation_is_what_is_done():
    """The openai SDK's ``stream_options={"include_obfuscation": False}``: none is ever added."""
    request = parse_chat_request(
        body(stream=True, stream_options={"include_usage": True, "include_obfuscation": False})
    )
    assert request.stream and "stream_options" not in request.params


def test_the_providers_own_service_tier_is_what_is_done():
    """As on /responses: 'auto' and 'default' are the provider's own tier, which is what it gets."""
    for tier in ("auto", "default"):
        assert "service_tier" not in parse_chat_request(body(service_tier=tier)).params
