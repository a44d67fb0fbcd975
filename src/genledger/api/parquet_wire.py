"""Generations as Parquet, for ``genledger generations export --format parquet``.

Needs ``pyarrow`` (the ``genledger[export]`` extra): importing this module without it raises
``ImportError``. The columns are the list item's keys in its order (as CSV's), with an
explicit schema: money exact as ``decimal128(38, 12)`` USD (from the ledger's picodollars, not
the JSON's floats), ``created_at`` a UTC timestamp, ``provider_responses`` a list of structs,
``metadata`` a string-to-string map, ``feedback`` a struct. Each batch is written as one row
group, so the writer holds one batch, never the whole export.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from genledger.api.generation_wire import listed_json
from genledger.core.adjustments import Adjustment
from genledger.core.content import Feedback
from genledger.core.generation import Generation
from genledger.core.money import to_decimal
from genledger.core.notes import Notes

_MONEY = {
    "total_cost": "total_cost_pico",
    "cache_discount": "cache_discount_pico",
    "usage": "charge_pico",
    "upstream_inference_cost": "upstream_cost_pico",
}
_USD = pa.decimal128(38, 12)
_ATTEMPT = pa.struct(
    [
        ("status", pa.int64()),
        ("provider_name", pa.string()),
        ("latency", pa.float64()),
        ("id", pa.string()),
        ("is_byok", pa.bool_()),
    ]
)
_TEXT = pa.string()
_COUNT = pa.int64()

SCHEMA = pa.schema(
    [
        ("id", _TEXT),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("model", _TEXT),
        ("api_type", _TEXT),
        ("upstream_id", _TEXT),
        ("provider_name", _TEXT),
        ("total_cost", _USD),
        ("cache_discount", _USD),
        ("usage", _USD),
        ("streamed", pa.bool_()),
        ("cancelled", pa.bool_()),
        ("latency", pa.float64()),
        ("generation_time", pa.float64()),
        ("finish_reason", _TEXT),
        ("native_finish_reason", _TEXT),
        ("tokens_prompt", _COUNT),
        ("tokens_completion", _COUNT),
        ("native_tokens_prompt", _COUNT),
        ("native_tokens_completion", _COUNT),
        ("native_tokens_reasoning", _COUNT),
        ("native_tokens_cached", _COUNT),
        ("native_tokens_completion_images", _COUNT),
        ("num_media_prompt", _COUNT),
        ("origin", _TEXT),
        ("http_referer", _TEXT),
        ("user_agent", _TEXT),
        ("external_user", _TEXT),
        ("app_title", _TEXT),
        ("router", _TEXT),
        ("data_region", _TEXT),
        ("request_id", _TEXT),
        ("provider_responses", pa.list_(_ATTEMPT)),
        ("session_id", _TEXT),
        ("metadata", pa.map_(pa.string(), pa.string())),
        ("upstream_inference_cost", _USD),
        ("app_id", _COUNT),
        ("moderation_latency", pa.float64()),
        ("num_input_audio_prompt", _COUNT),
        ("num_media_completion", _COUNT),
        ("num_search_results", _COUNT),
        ("is_byok", pa.bool_()),
        ("preset_id", _TEXT),
        ("service_tier", _TEXT),
        ("web_search_engine", _TEXT),
        ("workspace_id", _TEXT),
        ("num_fetches", _COUNT),
        ("response_cache_source_id", _TEXT),
        ("price_version", _COUNT),
        ("adjustments", _TEXT),  # the list item's adjustments as compact JSON
        ("adjusted_usage", _USD),
        (
            "feedback",
            pa.struct(
                [
                    ("category", _TEXT),
                    ("comment", _TEXT),
                    ("created_at", pa.timestamp("us", tz="UTC")),
                ]
            ),
        ),
    ]
)
"""One column per item key, in the item's order (a test holds it to ``ITEM_KEYS``)."""


def parquet_row(
    generation: Generation, adjustments: Sequence[Adjustment] = (), feedback: Feedback | None = None
) -> dict[str, Any]:
    """The list item, with exact money and datetimes for ``created_at``."""
    row = listed_json(generation, adjustments, feedback)
    row["adjustments"] = orjson.dumps(row["adjustments"]).decode()
    row["adjusted_usage"] = to_decimal(generation.charge_pico + sum(a.amount_pico for a in adjustments))
    row["created_at"] = generation.created_at
    if feedback is not None:
        row["feedback"]["created_at"] = feedback.created_at
    for column, attribute in _MONEY.items():
        pico = getattr(generation, attribute)
        row[column] = None if pico is None else to_decimal(pico)
    return row


class ParquetExport:
    """A Parquet file written one row group per batch: ``with ParquetExport(path) as out:``."""

    def __init__(self, path: Path) -> None:
        self._writer = pq.ParquetWriter(str(path), SCHEMA)

    def write(self, batch: list[Generation], notes: Notes | None = None) -> None:
        notes = notes or Notes()
        rows = pa.RecordBatch.from_pylist([parquet_row(g, *notes.of(g.id)) for g in batch], schema=SCHEMA)
        self._writer.write_batch(rows)

    def __enter__(self) -> ParquetExport:
        return self

    def __exit__(self, *exc: object) -> None:
        self._writer.close()
