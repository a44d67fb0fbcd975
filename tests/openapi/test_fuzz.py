"""Schemathesis against a live gateway (``genledger serve`` on SQLite), twice.

1. On the demo provider: every operation, its example and a few generated cases each, then
   the edge values of ``fuzzing.EDGES`` (again on PostgreSQL). No 5xx at all, and every
   answer as the document says.
2. On a fault upstream (a fake that fails, overloads, stalls, answers garbage or dies
   mid-stream, a different way on each request): the inference operations. ``502``,
   ``524`` and ``529`` are the upstream's failures, documented on those operations, and
   accepted there; any other 5xx (a 500 above all) is a violation.

Each run prints its counts: operations tried, examples, violations (0).
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from genledger.api.openapi import OPENAPI_PATH
from genledger.api.operations import UPSTREAM_FAILURES
from genledger.config import DEMO_EMBEDDING_MODEL, DEMO_MODEL
from tests.e2e.process import GatewayProcess
from tests.fakes import FakeOpenAIInThread
from tests.gateway import create_key
from tests.openapi.fuzzing import EDGES, Edge, Tally, fuzz, probe
from tests.services import postgres_database

EXAMPLES = 3
"""Generated cases per operation and mode (positive, negative), besides its example."""
FAULT_EXAMPLES = 6
BUDGET_S = 60.0  # both runs, on a loaded 2-core machine
INFERENCE = frozenset(
    {
        "/api/v1/chat/completions",
        "/api/v1/responses",
        "/api/v1/messages",
        "/api/v1/embeddings",
        "/api/v1/completions",
    }
)
MANAGEMENT = frozenset(
    {"/api/v1/keys", "/api/v1/keys/{hash}", "/api/v1/statements", "/metrics", "/api/v1/activity"}
)
FAULTS = (
    "status:500",
    "overloaded",
    "garbage",
    "status:429;retry_after=1",
    "stall:5",
    "die_mid_stream",
    "error_mid_stream",
    "status:503",
    "empty",
)


def _report(capsys: pytest.CaptureFixture[str], tally: Tally, name: str) -> None:
    with capsys.disabled():
        print("\n" + tally.summary(name))
        for violation in tally.violations:
            print("  " + violation)


class Keys:
    def __init__(self, database_url: str) -> None:
        self.ordinary = create_key(database_url, "fuzz", store_content=True)
        self.management = create_key(database_url, "fuzz-admin", management=True)

    def headers_for(self, path: str) -> dict[str, str]:
        key = self.management if path in MANAGEMENT else self.ordinary
        return {"Authorization": f"Bearer {key}"}


def served_model(case: Any) -> None:
    """Name a served model in a generated inference body, so that it goes past routing."""
    if case.path in INFERENCE and isinstance(case.body, dict) and "model" in case.body:
        case.body["model"] = DEMO_EMBEDDING_MODEL if case.path == "/api/v1/embeddings" else DEMO_MODEL


def known_answers(generation_id: str, key_hash: str) -> list[Edge]:
    """Requests for things that exist, each answered 200."""
    by_id = {"id": generation_id}
    return [
        Edge("GET", "/api/v1/generation", by_id),
        Edge("GET", "/api/v1/generation/content", by_id),
        Edge(
            "POST", "/api/v1/generation/feedback", body={"generation_id": generation_id, "category": "other"}
        ),
        Edge("GET", "/api/v1/generation", by_id),  # now with its feedback
        Edge("GET", "/api/v1/generations", {"limit": 5}),
        Edge("GET", "/api/v1/generations/export", {"format": "csv"}),
        Edge("GET", "/api/v1/generations/export", {"format": "ndjson"}),
        Edge("GET", "/api/v1/activity", {"group_by": "day,model,metadata.team"}),
        Edge("GET", "/api/v1/activity", {}),
        Edge("GET", "/api/v1/keys/{hash}", path_parameters={"hash": key_hash}),
        Edge(
            "PATCH",
            "/api/v1/keys/{hash}",
            body={"label": "fuzzed", "limit": 100},
            path_parameters={"hash": key_hash},
        ),
        Edge("GET", "/api/v1/key", {}),
        Edge(
            "GET",
            "/api/v1/models/{author}/{slug}/endpoints",
            path_parameters={"author": "genledger", "slug": "demo"},
        ),
        Edge("GET", "/api/v1/model/{author}/{slug}", path_parameters={"author": "genledger", "slug": "demo"}),
        Edge("GET", "/api/v1/statements", {}),
        Edge("GET", "/metrics", {}),
    ]


def never(_path: str, _status: int) -> bool:
    return False


def broken_document(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` wrong three ways: a 404 left out, a type changed, a header that never comes."""
    del document["paths"]["/api/v1/generation"]["get"]["responses"]["404"]
    document["components"]["schemas"]["Count"]["properties"]["count"]["type"] = "string"
    credits = document["paths"]["/api/v1/credits"]["get"]["responses"]["200"]
    credits["headers"] = {"X-Genledger-Never": {"required": True, "schema": {"type": "string"}}}
    return document


def _sqlite(folder: Path) -> str:
    return f"sqlite:///{folder}/genledger.db"


def test_the_demo_gateway_answers_every_operation_as_documented(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    began = time.monotonic()
    database_url = _sqlite(tmp_path)
    keys = Keys(database_url)
    with GatewayProcess({"database_url": database_url}, tmp_path) as gateway:
        # A generation of this key, so that reads find something besides 404s.
        answer = httpx.post(
            f"{gateway.base_url}/chat/completions",
            json={"model": DEMO_MODEL, "messages": [{"role": "user", "content": "Hello"}]},
            headers=keys.headers_for("/api/v1/chat/completions"),
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        # The 200s the generators cannot reach (they do not know ids or hashes), checked as well.
        generation_id = answer.json()["id"]
        admin = keys.headers_for("/api/v1/keys")
        listed = httpx.get(f"{gateway.base_url}/keys", headers=admin, timeout=10).json()["data"]
        key_hash = next(key["hash"] for key in listed if key["name"] == "fuzz")
        tally = Tally()
        real = probe(gateway.url, keys.headers_for, known_answers(generation_id, key_hash), never, tally)
        assert real == [200] * len(real), real
        fuzz(
            gateway.url,
            keys.headers_for,
            examples=EXAMPLES,
            allowed_5xx=never,
            before_call=served_model,
            tally=tally,
        )
        probe(gateway.url, keys.headers_for, EDGES, never, tally)
        # The checks can fail: the same gateway against a document that says otherwise.
        broken = broken_document(httpx.get(gateway.url + OPENAPI_PATH, timeout=10).json())
        caught = fuzz(
            gateway.url,
            keys.headers_for,
            examples=1,
            allowed_5xx=never,
            only=lambda path: path in {"/api/v1/generation", "/api/v1/models/count", "/api/v1/credits"},
            document=broken,
        )
    _report(capsys, tally, "demo provider")
    found = "\n".join(caught.violations)
    assert "Undocumented status code" in found and "Received: 404" in found
    assert "is not of type" in found and "X-Genledger-Never" in found
    assert tally.operations == 30
    assert tally.examples > len(EDGES) + 30 * EXAMPLES
    assert tally.statuses[200] >= tally.operations  # the examples succeed: the 200 paths were checked
    assert tally.violations == []
    assert time.monotonic() - began < BUDGET_S


@pytest.mark.postgres
def test_edge_values_on_postgresql_are_refused_as_documented(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The edges again, where PostgreSQL's columns are narrower than SQLite's (32-bit rate limits)."""
    with postgres_database() as database_url:
        keys = Keys(database_url)
        tally = Tally()
        with GatewayProcess({"database_url": database_url}, tmp_path) as gateway:
            probe(gateway.url, keys.headers_for, EDGES, never, tally)
    _report(capsys, tally, "edges on PostgreSQL")
    assert tally.examples == len(EDGES)
    assert tally.violations == []


def upstream_failure(path: str, status: int) -> bool:
    return path in INFERENCE and status in UPSTREAM_FAILURES


_SAY_HI = [{"role": "user", "content": "Hi"}]
FAULTED = (
    Edge("POST", "/api/v1/chat/completions", body={"model": DEMO_MODEL, "messages": _SAY_HI}),
    Edge("POST", "/api/v1/chat/completions", body={"model": DEMO_MODEL, "messages": _SAY_HI, "stream": True}),
    Edge("POST", "/api/v1/responses", body={"model": DEMO_MODEL, "input": "Hi", "stream": True}),
    Edge(
        "POST",
        "/api/v1/messages",
        body={"model": DEMO_MODEL, "max_tokens": 8, "messages": _SAY_HI, "stream": True},
    ),
    Edge("POST", "/api/v1/completions", body={"model": DEMO_MODEL, "prompt": "Hi", "stream": True}),
    Edge("POST", "/api/v1/embeddings", body={"model": DEMO_EMBEDDING_MODEL, "input": "Hi"}),
)


def test_a_failing_upstream_yields_only_documented_upstream_statuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    began = time.monotonic()
    database_url = _sqlite(tmp_path)
    keys = Keys(database_url)
    with FakeOpenAIInThread() as upstream:
        prices: dict[str, Any] = {"prompt_price": "1", "completion_price": "2"}
        settings = {
            "database_url": database_url,
            "routing": {"breaker_failures": 10_000},  # every request reaches the fault
            "providers": {"fault": {"kind": "openai", "base_url": upstream.api_url, "timeout": 0.5}},
            "models": {
                DEMO_MODEL: {"provider": "fault", "upstream_model": "fast", **prices},
                DEMO_EMBEDDING_MODEL: {"provider": "fault", "kind": "embeddings", **prices},
            },
        }
        faults = itertools.cycle(FAULTS)

        def next_fault(case: Any) -> None:
            served_model(case)
            upstream.set_behavior(next(faults))

        with GatewayProcess(settings, tmp_path) as gateway:
            tally = fuzz(
                gateway.url,
                keys.headers_for,
                examples=FAULT_EXAMPLES,
                allowed_5xx=upstream_failure,
                only=lambda path: path in INFERENCE,
                before_call=next_fault,
            )
            # Each fault against each answer's shape, streamed above all (a stream that fails
            # after its 200 must still end as the document says).
            for fault in FAULTS:
                upstream.set_behavior(fault)
                probe(gateway.url, keys.headers_for, FAULTED, upstream_failure, tally)
        reached = upstream.stats()["requests"]
    _report(capsys, tally, "fault upstream")
    assert tally.operations == len(INFERENCE)
    assert reached >= len(FAULTS) * len(FAULTED)
    assert set(tally.statuses) >= {200, 429, *UPSTREAM_FAILURES}  # the faults were met, mid-stream too
    assert tally.violations == []
    assert time.monotonic() - began < BUDGET_S
