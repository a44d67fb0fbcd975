"""The default gateway (the demo) answers embeddings, prompt completions and the catalog routes
through the official openai client, in process; and the edge renders their failures."""

from __future__ import annotations

import orjson
import pytest

from genledger.api.catalog_wire import STATUS_CIRCUIT_OPEN, STATUS_OK, endpoints_json
from genledger.api.prompt_wire import text_sse
from genledger.core.events import Failed, Finish, Head, Relay, Settled, TextDelta
from genledger.core.usage import Usage
from genledger.gateway.breakers import Breakers
from genledger.gateway.measurements import Measurements
from genledger.providers.demo import demo_vector
from tests.inprocess.conftest import App

DEMO_EMBEDDING = "genledger/demo-embedding"


async def test_the_demo_answers_embeddings_in_both_encodings(app: App):
    client = app.client()
    floats = await client.embeddings.create(model=DEMO_EMBEDDING, input=["a", "b"], encoding_format="float")
    assert [item.embedding for item in floats.data] == [
        list(demo_vector("a", 256)),
        list(demo_vector("b", 256)),
    ]
    decoded = await client.embeddings.create(model=DEMO_EMBEDDING, input="a", dimensions=16)
    assert decoded.data[0].embedding == [float(v) for v in decoded.data[0].embedding]
    assert len(decoded.data[0].embedding) == 16
    record = app.generations.generations[floats.id]
    assert (record.api_type, record.tokens_prompt, record.model) == ("embeddings", 2, DEMO_EMBEDDING)
    assert floats.usage.model_extra["cost"] == record.charge_pico / 10**12 > 0


async def test_the_demo_completes_prompts_streamed(app: App):
    stream = await app.client().completions.create(
        model="genledger/demo", prompt="Tell me", max_tokens=3, stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == " The genledger demo"
    record = app.generations.generations[chunks[0].id]
    assert (record.api_type, record.streamed, record.finish_reason) == ("completions", True, "length")


async def test_catalog_routes_answer_for_the_demo(app: App):
    headers = {"Authorization": f"Bearer {app.secret}"}
    endpoints = (await app.http.get("/api/v1/models/genledger/demo/endpoints", headers=headers)).json()[
        "data"
    ]
    assert [e["provider_name"] for e in endpoints["endpoints"]] == ["genledger-demo"]
    assert (await app.http.get("/api/v1/models/count", headers=headers)).json() == {"data": {"count": 2}}
    missing = await app.http.get("/api/v1/model/genledger/none", headers=headers)
    assert missing.status_code == 404
    unauthenticated = await app.http.get("/api/v1/providers")
    assert unauthenticated.status_code == 401


def test_an_open_circuit_shows_as_the_endpoints_status(app: App):
    services = app.services
    entry = services.catalog.resolve("genledger/demo")
    breakers = Breakers(failures=1, cooldown=60)
    measured = Measurements()
    body = endpoints_json(entry, services.providers, breakers, measured)
    assert body["data"]["endpoints"][0]["status"] == STATUS_OK
    assert body["data"]["endpoints"][0]["latency_last_30m"] is None
    breakers.failed(entry.endpoints[0].key)
    for ms in range(1, 101):
        measured.latency(entry.endpoints[0].key, float(ms))
    body = endpoints_json(entry, services.providers, breakers, measured)
    endpoint = body["data"]["endpoints"][0]
    assert endpoint["status"] == STATUS_CIRCUIT_OPEN
    assert endpoint["latency_last_30m"] == {"p50": 50.0, "p75": 75.0, "p90": 90.0, "p99": 99.0}
    assert endpoint["supported_parameters"] == ["max_tokens", "stream", "user"]  # what the demo honours


async def test_a_prompt_stream_that_fails_midway_ends_with_an_error_chunk():
    async def events():
        yield TextDelta("Once")
        yield Finish("length", "length")
        yield Failed(502, "upstream died", {"provider_name": "P"})
        yield Settled(Usage(3, 1), 5)

    frames = [frame async for frame in text_sse(Relay(Head("gen-1", "m", "P", 1), events()))]
    chunks = [orjson.loads(frame.removeprefix(b"data: ")) for frame in frames[:-1]]
    assert [c["choices"][0]["text"] for c in chunks[:2]] == ["Once", ""]
    assert chunks[1]["choices"][0]["finish_reason"] == "length"
    assert chunks[2]["error"] == {"code": 502, "message": "upstream died", "metadata": {"provider_name": "P"}}
    assert chunks[2]["choices"][0]["finish_reason"] == "error"
    assert chunks[3]["choices"] == [] and chunks[3]["usage"]["cost"] == 5e-12
    assert frames[-1] == b"data: [DONE]\n\n"


@pytest.mark.parametrize(
    ("path", "repeated"),
    [
        ("/api/v1/generation?id=gen-a&id=gen-b", "id"),
        ("/api/v1/generations?model=acme/a&model=acme/b", "model"),
        ("/api/v1/generations?limit=1&limit=5", "limit"),
        ("/api/v1/generations/export?metadata[team]=a&metadata[team]=b", "metadata[team]"),
        ("/api/v1/activity?date=2026-11-01&date=2026-11-02", "date"),
    ],
)
async def test_a_query_parameter_given_twice_is_a_400_naming_it(app: App, path: str, repeated: str):
    """Nothing sent is silently ignored: the first of two values was (the last one won)."""
    headers = {"Authorization": f"Bearer {app.admin if 'generations' in path else app.secret}"}
    response = await app.http.get(path, headers=headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["metadata"]["param"] == repeated and "more than once" in error["message"]
