"""One definition of a generation: the row, the contract's JSON and the client's model agree.

The Generation dataclass is the definition; the ledger's table, ``GET /generation``'s JSON
(and so ``shared/reference/generation-api.md``) and ``genledger.client.Generation`` are
pinned to it here, through the two rename tables.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from genledger.api.generation_wire import generation_json
from genledger.client import Generation as ClientGeneration
from genledger.core.generation import (
    COLUMN_NAMES,
    CONTRACT_CONSTANTS,
    CONTRACT_NAMES,
    EXTENSIONS,
    FIELDS,
    NOT_IN_CONTRACT,
    Generation,
    ProviderAttempt,
    column_name,
    contract_name,
)
from genledger.ledger.generations import generation_from_row, generation_row
from genledger.ledger.schema import generations as generations_table
from tests.contract import GENERATION_KEYS

# shared/ stands beside the checkout (as CI lays it out); any folder above it will do.
REFERENCE = next(
    (
        folder / "shared" / "reference" / "generation-api.md"
        for folder in Path(__file__).resolve().parents
        if (folder / "shared" / "reference" / "generation-api.md").exists()
    ),
    Path("shared/reference/generation-api.md"),
)


def reference_keys() -> list[str]:
    """Every key in the reference's tables of the generation object, in order."""
    text = REFERENCE.read_text()
    section = text[text.index("## The generation object") : text.index("\n## Errors")]
    keys = []
    for cell in re.findall(r"^\| ([a-z_, ]+) \| ", section, flags=re.MULTILINE):
        keys += [name.strip() for name in cell.split(",") if name.strip() != "key"]
    return keys


def every_field_set() -> Generation:
    """A generation with a distinct, non-default value in every attribute."""
    return Generation(
        id="gen-1",
        key_id="key-1",
        created_at=datetime(2024, 7, 15, 23, 33, 19, 433273, tzinfo=UTC),
        model="acme/chat",
        api_type="completions",
        upstream_id="chatcmpl-1",
        provider_name="Acme",
        total_cost_pico=1_500_000,
        cache_discount_pico=250_000,
        charge_pico=1_400_000,
        streamed=True,
        cancelled=False,
        latency_ms=12.5,
        generation_time_ms=80.25,
        finish_reason="stop",
        native_finish_reason="end_turn",
        tokens_prompt=11,
        tokens_completion=12,
        native_tokens_prompt=13,
        native_tokens_completion=14,
        native_tokens_reasoning=15,
        native_tokens_cached=16,
        native_tokens_cache_write=17,
        native_tokens_completion_images=18,
        num_media_prompt=19,
        origin="https://app.example",
        http_referer="https://app.example/page",
        user_agent="ua/1",
        external_user="user-7",
        app_title="My App",
        router="acme/auto",
        data_region="europe",
        request_id="req-1",
        provider_responses=(ProviderAttempt(502, "Other", 3.5), ProviderAttempt(200, "Acme", 70.0, "up-1")),
        session_id="session-9",
        metadata={"team": "search", "env": "prod"},
    )


@pytest.mark.skipif(not REFERENCE.exists(), reason="shared/reference is beside the checkout")
def test_the_contract_keys_are_the_references_keys():
    assert list(GENERATION_KEYS) == reference_keys()


def test_the_json_shows_every_contract_key_and_its_extensions_only():
    assert set(generation_json(every_field_set())) == set(GENERATION_KEYS) | EXTENSIONS


def test_every_attribute_is_in_the_contract_or_deliberately_not():
    shown = {contract_name(a) for a in FIELDS if a not in NOT_IN_CONTRACT | EXTENSIONS}
    assert shown | set(CONTRACT_CONSTANTS) == set(GENERATION_KEYS)
    assert not EXTENSIONS & set(GENERATION_KEYS) and not EXTENSIONS & NOT_IN_CONTRACT
    assert not shown & set(CONTRACT_CONSTANTS)
    assert set(CONTRACT_NAMES) <= set(FIELDS) and set(COLUMN_NAMES) <= set(FIELDS)
    assert set(FIELDS) >= NOT_IN_CONTRACT


def test_each_attribute_appears_under_its_contract_name_with_its_value():
    generation = every_field_set()
    data = generation_json(generation)
    assert data["total_cost"] == 0.0000015 and data["usage"] == 0.0000014
    assert data["cache_discount"] == 0.00000025
    assert (data["latency"], data["generation_time"]) == (12.5, 80.25)
    assert data["created_at"] == "2024-07-15T23:33:19.433273+00:00"
    assert data["provider_responses"] == [
        {"status": 502, "provider_name": "Other", "latency": 3.5, "id": None, "is_byok": False},
        {"status": 200, "provider_name": "Acme", "latency": 70.0, "id": "up-1", "is_byok": False},
    ]
    for attribute in FIELDS:
        if (
            attribute in NOT_IN_CONTRACT
            or attribute.endswith("_pico")
            or attribute
            in (
                "created_at",
                "provider_responses",
            )
        ):
            continue
        assert data[contract_name(attribute)] == getattr(generation, attribute), attribute
    for key, value in CONTRACT_CONSTANTS.items():
        assert data[key] == value


def test_the_row_has_a_column_for_every_attribute_and_round_trips():
    assert {column_name(a) for a in FIELDS} == {c.name for c in generations_table.columns}
    generation = every_field_set()
    row = generation_row(generation)
    assert generation_from_row([row[column.name] for column in generations_table.c]) == generation


def test_the_clients_model_has_exactly_the_contract_keys_and_parses_the_json():
    assert set(ClientGeneration.model_fields) == set(GENERATION_KEYS) | EXTENSIONS
    parsed = ClientGeneration.model_validate(generation_json(every_field_set()))
    assert parsed.usage == 0.0000014 and parsed.native_tokens_cached == 16
    assert parsed.provider_responses is not None and parsed.provider_responses[1].id == "up-1"
