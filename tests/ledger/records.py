"""Generations to record in ledger tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from genledger.core.generation import Generation, ProviderAttempt
from genledger.core.ids import new_generation_id
from genledger.core.keys import Hold
from genledger.ledger import Ledger
from genledger.ledger.schema import generations


def generation(key_id: str, **fields) -> Generation:
    base = Generation(
        id=new_generation_id(),
        key_id=key_id,
        created_at=datetime.now(UTC),
        model="acme/fast-chat",
        provider_name="FakeAI",
        total_cost_pico=123_456_789,
        charge_pico=123_456_789,
        cache_discount_pico=0,
        streamed=True,
        cancelled=False,
        latency_ms=12.5,
        tokens_prompt=10,
        tokens_completion=20,
        provider_responses=(ProviderAttempt(status=200, provider_name="FakeAI", latency_ms=3.0),),
    )
    return replace(base, **fields)


async def charged_to(ledger: Ledger, key_id: str) -> int:
    """The sum of the charges of ``key_id``'s generations, read straight from the table."""
    query = select(func.coalesce(func.sum(generations.c.usage_pico), 0)).where(generations.c.key_id == key_id)
    async with ledger.engine.connect() as connection:
        return int((await connection.execute(query)).scalar_one())


def hold(hold_id: str | None = None, *, owner: str = "test-instance", lease_s: float = 600) -> Hold:
    """A reservation's hold: ``hold_id`` (a new id by default) leased to ``owner`` for ``lease_s``."""
    return Hold(hold_id or new_generation_id(), owner, datetime.now(UTC) + timedelta(seconds=lease_s))
