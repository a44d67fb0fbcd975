"""The whole ASGI app in process: in-memory stores, the demo and scripted providers, and the
official ``openai`` client over httpx's ASGITransport (no socket)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import openai
import pytest

from genledger.api import create_app
from genledger.config import load_settings
from genledger.gateway.services import Services
from genledger.limits.ratelimit import MemoryRateLimiter
from genledger.providers.demo import DemoProvider
from tests.inprocess.stores import (
    MemoryContentStore,
    MemoryFeedbackStore,
    MemoryGenerationStore,
    MemoryKeyStore,
)


@dataclass
class App:
    http: httpx.AsyncClient
    services: Services
    keys: MemoryKeyStore
    generations: MemoryGenerationStore
    secret: str
    admin: str

    def client(self, secret: str | None = None) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key=secret or self.secret,
            base_url="http://gateway/api/v1",
            http_client=self.http,
            max_retries=0,
        )


@pytest.fixture
async def app() -> AsyncIterator[App]:
    settings = load_settings(None)  # the embedded defaults: the demo provider and model
    keys = MemoryKeyStore()
    generations = MemoryGenerationStore(keys)
    providers = {name: DemoProvider(name, config) for name, config in settings.providers.items()}
    services = Services(
        settings,
        keys=keys,
        generations=generations,
        content=MemoryContentStore(),
        feedback=MemoryFeedbackStore(),
        providers=providers,
        limiter=MemoryRateLimiter(),
    )
    _, secret = await keys.create("app", limit_pico=10**12)
    _, admin = await keys.create("admin", management=True)
    transport = httpx.ASGITransport(app=create_app(settings, services))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield App(http, services, keys, generations, secret, admin)
    await services.aclose()


async def test_the_demo_model_answers_through_the_official_client_and_is_recorded(app: App):
    completion = await app.client().chat.completions.create(
        model="genledger/demo", messages=[{"role": "user", "content": "hi"}], max_tokens=5
    )
    assert completion.choices[0].message.content == "This is the genledger demo"
    assert completion.choices[0].finish_reason == "length"
    record = app.generations.generations[completion.id]
    assert (record.tokens_completion, record.finish_reason, record.streamed) == (5, "length", False)
    assert completion.usage is not None and completion.usage.completion_tokens == 5
    response = await app.http.get(
        "/api/v1/generation", params={"id": completion.id}, headers={"Authorization": f"Bearer {app.secret}"}
    )
    assert response.status_code == 200
    assert response.json()["data"]["usage"] == record.charge_pico / 10**12


async def test_the_demo_model_streams_words_and_usage_with_cost(app: App):
    stream = await app.client().chat.completions.create(
        model="genledger/demo",
        messages=[{"role": "user", "content": "hello there"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("This is the genledger demo model. You said: hello there")
    assert len(text.split()) == 40
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    final = chunks[-1]
    assert final.choices == [] and final.usage is not None and final.usage.completion_tokens == 40
    record = app.generations.generations[chunks[0].id]
    assert {c.id for c in chunks} == {record.id}
    assert final.usage.model_extra["cost"] == record.charge_pico / 10**12
    assert (record.streamed, record.cancelled, record.tokens_completion) == (True, False, 40)


async def test_key_management_goes_through_one_use_case(app: App):
    headers = {"Authorization": f"Bearer {app.admin}"}
    created = await app.http.post("/api/v1/keys", json={"name": "new", "limit": 2}, headers=headers)
    assert created.status_code == 201 and created.json()["data"]["limit"] == 2
    listed = (await app.http.get("/api/v1/keys", headers=headers)).json()["data"]
    assert [k["name"] for k in listed] == ["app", "admin", "new"]
    refused = await app.http.post(
        "/api/v1/keys", content=b"not json", headers={"Authorization": f"Bearer {app.secret}"}
    )
    assert refused.status_code == 403  # the management check comes before any look at the body
    new_hash = created.json()["data"]["hash"]
    patched = await app.http.patch(f"/api/v1/keys/{new_hash}", json={"disabled": True}, headers=headers)
    assert patched.json()["data"]["disabled"] is True
    with pytest.raises(openai.AuthenticationError):
        await app.client(created.json()["key"]).chat.completions.create(
            model="genledger/demo", messages=[{"role": "user", "content": "hi"}]
        )


async def test_the_calling_key_sees_its_usage_by_period(app: App):
    await app.client().chat.completions.create(
        model="genledger/demo", messages=[{"role": "user", "content": "hi"}]
    )
    data = (await app.http.get("/api/v1/key", headers={"Authorization": f"Bearer {app.secret}"})).json()[
        "data"
    ]
    charged = sum(g.charge_pico for g in app.generations.generations.values()) / 10**12
    assert data["usage"] == data["usage_daily"] == data["usage_weekly"] == data["usage_monthly"] == charged
    assert data["limit_remaining"] == pytest.approx(1 - charged)
