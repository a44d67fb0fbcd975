"""Generations to record in ledger tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from genledger.core.generation import Generation, ProviderAttempt
from genledger.core.ids import new_generation_id


def generation(key_id: str, **fields) -> Generation:
    base = Generation(
        id=new_generation_id(),
        key_id=key_id,
        created_at=datetime.now(UTC),
        model="acme/fast-chat",
        provider_name="FakeAI",
        total_cost=123_456_789,
        usage=123_456_789,
        cache_discount=0,
        streamed=True,
        cancelled=False,
        latency_ms=12.5,
        tokens_prompt=10,
        tokens_completion=20,
        provider_responses=(ProviderAttempt(status=200, provider_name="FakeAI", latency_ms=3.0),),
    )
    return replace(base, **fields)
