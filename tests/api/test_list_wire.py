"""The list's cursor: what it gave out reads back, and anything else is a 400 naming it."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from genledger.api.list_wire import decode_cursor, encode_cursor
from genledger.core.stores import Cursor
from genledger.errors import BadRequest

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)


def encoded(value: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


@given(st.datetimes(timezones=st.just(UTC)), st.text())
def test_a_cursor_given_out_reads_back(created_at: datetime, generation_id: str):
    cursor = Cursor(created_at, generation_id)
    assert decode_cursor(encode_cursor(cursor)) == cursor


@given(st.lists(JSON, min_size=2, max_size=2) | JSON)
def test_any_other_document_is_a_400_naming_the_cursor(value: object):
    try:
        cursor = decode_cursor(encoded(value))
    except BadRequest as refused:
        assert refused.metadata == {"param": "cursor"}
    else:  # only a pair of strings, the first an ISO time, is taken
        assert isinstance(value, list) and isinstance(value[0], str) and value[1] == cursor.id


@pytest.mark.parametrize("value", [[1, 2], [None, None], ["2026-01-01T00:00:00Z", 7], [["x"], "gen-1"]])
def test_a_pair_of_the_wrong_types_is_refused(value: object):
    with pytest.raises(BadRequest):
        decode_cursor(encoded(value))
