"""What the official ``openrouter`` SDK reads from genledger is true: values, not only shapes.

Also stored content (``GET /generation/content``) and feedback (``POST /generation/feedback``):
off by default, per config and per key, bounded in size and time, never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from openrouter import OpenRouter, errors

from genledger.core.content import GenerationContent
from genledger.core.ids import hash_key
from tests.e2e.conftest import MODEL, gateway_settings
from tests.e2e.test_sdk_conformance import NO_RETRIES
from tests.fakes import FakeOpenAIInThread
from tests.gateway import GatewayServer, create_key, run_with_ledger

SECRET_PROMPT = "the launch code is 0000-conformance"
MAX_BYTES = 4096
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture(scope="module")
def served(database_url: str, upstream: FakeOpenAIInThread) -> Iterator[GatewayServer]:
    """A gateway with content storage off by default (as shipped), bounded to MAX_BYTES."""
    settings = gateway_settings(
        database_url, upstream.api_url, content_storage={"max_bytes": MAX_BYTES, "retention_days": 7}
    )
    with GatewayServer.build(**settings) as server:
        yield server


@pytest.fixture(scope="module")
def admin(database_url: str) -> str:
    return create_key(database_url, "served-admin", management=True)


@pytest.fixture(scope="module")
def user(database_url: str) -> str:
    return create_key(database_url, "served-user", limit_pico=2 * 10**12, limit_reset="monthly")


@pytest.fixture(scope="module")
def recorder(database_url: str) -> str:
    """A key that turns content storage on for itself."""
    return create_key(database_url, "served-recorder", store_content=True)


def sdk(gateway: GatewayServer, key: str) -> OpenRouter:
    return OpenRouter(api_key=key, server_url=gateway.base_url, retry_config=NO_RETRIES)


def ask(gateway: GatewayServer, key: str, content: str = "hi", *, stream: bool = False) -> str:
    client = sdk(gateway, key)
    messages = [{"role": "user", "content": content}]
    if stream:
        with client.chat.send(model=MODEL, messages=messages, stream=True) as chunks:
            return [chunk.id for chunk in chunks][-1]
    return client.chat.send(model=MODEL, messages=messages).id


def test_chat_parses_streamed_and_not_with_tools(served: GatewayServer, user: str):
    client = sdk(served, user)
    messages = [{"role": "user", "content": "what is the weather in Paris?"}]
    answer = client.chat.send(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    assert answer.system_fingerprint == "fp_fake"  # relayed from the upstream
    call = answer.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and answer.choices[0].finish_reason == "tool_calls"
    with client.chat.send(model=MODEL, messages=messages, tools=[WEATHER_TOOL], stream=True) as chunks:
        seen = list(chunks)
    names = [
        tool.function.name
        for chunk in seen
        for choice in chunk.choices
        for tool in choice.delta.tool_calls or ()
        if tool.function is not None and tool.function.name
    ]
    assert names == ["get_weather"]
    assert seen[-1].usage is not None and seen[-1].usage.cost > 0


def test_models_list_counts_the_catalog(served: GatewayServer, user: str):
    listed = sdk(served, user).models.list().result
    assert listed.total_count == len(listed.data) == len(served.settings.models)
    assert listed.links.next is None
    model = next(m for m in listed.data if m.id == MODEL)
    assert model.links.details == f"/api/v1/models/{MODEL}/endpoints"
    assert model.default_parameters is None and model.supported_voices is None
    assert [m.id for m in sdk(served, user).models.list_for_user(security={"bearer": user}).result.data] == [
        m.id for m in listed.data
    ]


def test_models_list_pages_by_offset_and_limit(served: GatewayServer, user: str):
    """The SDK sends offset=0&limit=500 by default; smaller pages walk the catalog by links.next."""
    every = [m.id for m in sdk(served, user).models.list().result.data]
    assert len(every) >= 3
    seen: list[str] = []
    offset = 0
    while True:
        page = sdk(served, user).models.list(offset=offset, limit=2).result
        assert page.total_count == len(every)
        seen += [m.id for m in page.data]
        if page.links.next is None:
            break
        assert page.links.next == f"/api/v1/models?offset={offset + 2}&limit=2"
        offset += 2
    assert seen == every
    assert sdk(served, user).models.list(offset=len(every)).result.data == []
    for params, param in [
        ({"limit": "0"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"limit": "1001"}, "limit"),
    ]:
        refused = httpx.get(
            served.base_url + "/models", params=params, headers={"Authorization": f"Bearer {user}"}
        )
        assert refused.status_code == 400 and refused.json()["error"]["metadata"]["param"] == param


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("/models", {"category": "programming"}, "category"),
        ("/models", {"q": "fast"}, "q"),
        ("/models/user", {"sort": "newest"}, "sort"),
        ("/embeddings/models", {"output_modalities": "all"}, "output_modalities"),
        ("/models/count", {"category": "x"}, "category"),
        ("/model/" + MODEL, {"x": "1"}, "x"),
        ("/models/" + MODEL + "/endpoints", {"x": "1"}, "x"),
        ("/providers", {"x": "1"}, "x"),
        ("/key", {"x": "1"}, "x"),
        ("/credits", {"x": "1"}, "x"),
        ("/generation", {"id": "gen-x", "x": "1"}, "x"),
        ("/generation/content", {"id": "gen-x", "x": "1"}, "x"),
        ("/activity", {"user_id": "u"}, "user_id"),
    ],
)
def test_a_query_parameter_a_route_does_not_take_is_a_400_naming_it(
    served: GatewayServer, user: str, path: str, params: dict[str, str], param: str
):
    """Nothing sent is silently ignored: /models?category=x would otherwise list every model."""
    refused = httpx.get(served.base_url + path, params=params, headers={"Authorization": f"Bearer {user}"})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["metadata"]["param"] == param


def test_key_metadata_shows_the_limit_as_the_budget(served: GatewayServer, user: str):
    ask(served, user)
    data = sdk(served, user).api_keys.get_current_key_metadata().data
    assert data.limit == 2.0 and data.limit_reset == "monthly"
    (budget,) = data.budgets
    assert budget == data.effective_budget
    assert budget.scope == "key_limit" and budget.limit_usd == 2.0 and budget.reset_interval == "monthly"
    assert budget.spend_usd == pytest.approx(data.usage_monthly) and budget.spend_usd > 0
    assert budget.remaining_usd == pytest.approx(2.0 - budget.spend_usd)
    now = datetime.now(UTC)
    assert budget.resets_at is not None and budget.resets_at > now and budget.resets_at.day == 1
    assert data.workspace_id == "default" and data.organization_id is None and data.creator_user_id is None
    assert data.allowed_data_regions == [] and data.byok_usage_monthly == 0


def test_management_key_listing_has_last_used_from_the_ledger(
    served: GatewayServer, admin: str, user: str, database_url: str
):
    before = datetime.now(UTC)
    ask(served, user)
    manage = sdk(served, admin)
    listed = {key.hash: key for key in manage.api_keys.list().data}
    used = listed[hash_key(user)]
    assert used.last_used_at is not None and used.last_used_at >= before - timedelta(seconds=1)
    assert listed[hash_key(admin)].last_used_at is None  # management keys make no generations
    created = manage.api_keys.create(name="served-new", limit=1.0)
    assert created.data.last_used_at is None and created.data.workspace_id == "default"
    assert manage.api_keys.get(hash=created.data.hash).data.limit == 1.0
    assert manage.api_keys.update(hash=created.data.hash, name="served-renamed").data.name == "served-renamed"
    assert manage.api_keys.delete(hash=created.data.hash).DELETED is True
    with pytest.raises(errors.NotFoundResponseError):
        manage.api_keys.get(hash=created.data.hash)


def test_content_is_off_by_default_and_says_so(served: GatewayServer, user: str):
    generation_id = ask(served, user, SECRET_PROMPT)
    with pytest.raises(errors.NotFoundResponseError) as caught:
        sdk(served, user).generations.list_generation_content(id=generation_id)
    assert "content storage is off" in caught.value.data.error.message


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
def test_a_key_that_turns_content_on_reads_its_prompt_and_answer(
    served: GatewayServer, recorder: str, user: str, stream: bool, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    generation_id = ask(served, recorder, SECRET_PROMPT, stream=stream)
    content = sdk(served, recorder).generations.list_generation_content(id=generation_id).data
    assert content.input.messages == [{"role": "user", "content": SECRET_PROMPT}]
    assert content.output.completion and content.error is None
    # Another key (even one whose own content is off) gets the same 404 as for nothing stored.
    with pytest.raises(errors.NotFoundResponseError):
        sdk(served, user).generations.list_generation_content(id=generation_id)
    assert SECRET_PROMPT not in caplog.text and content.output.completion not in caplog.text


def test_content_over_the_size_bound_is_not_stored(served: GatewayServer, recorder: str):
    generation_id = ask(served, recorder, "x" * (MAX_BYTES + 1))
    with pytest.raises(errors.NotFoundResponseError) as caught:
        sdk(served, recorder).generations.list_generation_content(id=generation_id)
    assert f"larger than {MAX_BYTES} bytes" in caught.value.data.error.message


def test_expired_content_is_not_served_and_is_pruned(served: GatewayServer, recorder: str, database_url: str):
    generation_id = ask(served, recorder)
    old = datetime.now(UTC) - timedelta(days=8)

    async def backdate(ledger) -> int:
        key = await ledger.keys.find_by_name("served-recorder")
        stored = GenerationContent(
            "gen-old-content", key.id, old, ({"role": "user", "content": "x"},), "y", None
        )
        await ledger.content.put(stored)
        assert await ledger.content.get("gen-old-content", key.id, old) is not None
        return await ledger.content.prune(datetime.now(UTC) - timedelta(days=7))

    assert run_with_ledger(database_url, backdate) == 1
    with pytest.raises(errors.NotFoundResponseError):
        sdk(served, recorder).generations.list_generation_content(id="gen-old-content")
    assert sdk(served, recorder).generations.list_generation_content(id=generation_id).data.output.completion


def test_store_content_is_set_per_key_through_the_management_api(served: GatewayServer, admin: str):
    with httpx.Client(base_url=served.base_url, headers={"Authorization": f"Bearer {admin}"}) as http:
        created = http.post("/keys", json={"name": "served-switch", "store_content": True})
        assert created.status_code == 201 and created.json()["data"]["store_content"] is True
        key_hash = created.json()["data"]["hash"]
        secret = created.json()["key"]
        generation_id = ask(served, secret)
        assert (
            http.patch(f"/keys/{key_hash}", json={"store_content": None}).json()["data"]["store_content"]
            is None
        )
        refused = http.patch(f"/keys/{key_hash}", json={"store_content": "yes"})
        assert refused.status_code == 400 and refused.json()["error"]["metadata"]["param"] == "store_content"
    # What was stored while it was on stays readable until it expires.
    assert sdk(served, secret).generations.list_generation_content(id=generation_id).data.output.completion


def test_feedback_is_stored_and_shown_by_the_list(served: GatewayServer, user: str, recorder: str):
    generation_id = ask(served, user)
    client = sdk(served, user)
    answer = client.generations.submit_feedback(
        generation_id=generation_id, category="latency", comment="slow"
    )
    assert answer.data.SUCCESS is True  # a const the SDK validates
    client.generations.submit_feedback(generation_id=generation_id, category="other")  # replaces the first
    with httpx.Client(base_url=served.base_url, headers={"Authorization": f"Bearer {user}"}) as http:
        items = {item["id"]: item for item in http.get("/generations", params={"limit": 100}).json()["data"]}
        assert items[generation_id]["feedback"]["category"] == "other"
        assert items[generation_id]["feedback"]["comment"] is None
        others = [item["feedback"] for gid, item in items.items() if gid != generation_id]
        assert others and all(feedback is None for feedback in others)
        bad = http.post("/generation/feedback", json={"generation_id": generation_id, "category": "great"})
        assert bad.status_code == 400 and bad.json()["error"]["metadata"]["param"] == "category"
        extra = http.post(
            "/generation/feedback", json={"generation_id": generation_id, "category": "other", "rating": 5}
        )
        assert extra.status_code == 400 and extra.json()["error"]["metadata"]["param"] == "rating"
    with pytest.raises(errors.NotFoundResponseError):  # another key's generation: as if missing
        sdk(served, recorder).generations.submit_feedback(generation_id=generation_id, category="other")


def test_unserved_routes_answer_the_json_envelope_never_html(served: GatewayServer, user: str):
    with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {user}"}) as http:
        for method, path in (
            ("GET", "/api/v1/workspaces"),
            ("POST", "/api/v1/byok"),
            ("DELETE", "/api/v1/guardrails/x"),
            ("GET", "/nowhere"),
        ):
            response = http.request(method, path)
            assert response.status_code == 404
            assert response.headers["content-type"].startswith("application/json")
            assert response.json()["error"]["code"] == 404
