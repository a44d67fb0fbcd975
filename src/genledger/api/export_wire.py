"""Generations as export rows: NDJSON and CSV, one batch at a time.

Shared by ``GET /api/v1/generations/export`` and ``genledger generations export``, so a file
is the same whichever made it.

* NDJSON: one line per generation, the list's item (:func:`listed_json`: the contract's object
  and the ledger's extension keys, adjustments and feedback included).
* CSV: a header, then one row per generation with one column per item key, in the order
  of :data:`CSV_COLUMNS` (the item's own order). A cell is the value as JSON text
  (numbers, ``true``/``false``, ``provider_responses`` and ``metadata`` as compact JSON),
  except strings, which are written as they are; an empty cell is ``null``.

Both render a batch at a time: the writer holds one batch, never the whole export.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from genledger.api.generation_wire import LISTED_KEYS, listed_items
from genledger.core.generation import Generation
from genledger.core.notes import Notes

CSV_COLUMNS: tuple[str, ...] = LISTED_KEYS
NotesOf = Callable[[list[str]], Awaitable[Notes]]
"""How an export reads a batch's adjustments and feedback (``LedgerReader.notes``)."""
MEDIA_TYPES = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


def ndjson(generations: Sequence[Generation], notes: Notes | None = None) -> bytes:
    """One JSON line per generation, each ending in a newline."""
    return b"".join(orjson.dumps(item) + b"\n" for item in listed_items(generations, notes or Notes()))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def csv_header() -> str:
    return _csv_lines([list(CSV_COLUMNS)])


def csv_rows(generations: Sequence[Generation], notes: Notes | None = None) -> str:
    """One CSV row per generation, in :data:`CSV_COLUMNS` order (no header)."""
    return _csv_lines(
        [_cell(item[column]) for column in CSV_COLUMNS]
        for item in listed_items(generations, notes or Notes())
    )


def _csv_lines(rows: Iterable[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


async def render(
    batches: AsyncIterator[list[Generation]], format: str, notes_of: NotesOf
) -> AsyncIterator[bytes]:
    """The export in ``format`` (``ndjson`` or ``csv``), one chunk per batch (CSV: the header first)."""
    if format == "csv":
        yield csv_header().encode()
    async for batch in batches:
        notes = await notes_of([g.id for g in batch])
        yield ndjson(batch, notes) if format == "ndjson" else csv_rows(batch, notes).encode()


def export_filename(format: str, now: datetime | None = None) -> str:
    """``generations-20261127T120000Z.ndjson``: when the export was made, in UTC."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"generations-{stamp}.{format}"
