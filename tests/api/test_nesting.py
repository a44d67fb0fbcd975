"""JSON nested deeper than genledger can write back is a 400, before anything reads it.

orjson reads 1024 levels but writes 254: a body nested between the two was taken in, and its
upstream payload (or its idempotency hash) failed to serialise, a 500 on every inference route.
"""

from __future__ import annotations

import orjson
import pytest

from genledger.api.inbound import MAX_NESTING, load_object
from genledger.errors import BadRequest


def nested(depth: int) -> bytes:
    """A body whose ``response_format`` makes the whole ``depth`` levels deep."""
    return b'{"model": "m", "response_format": ' + b'{"a": ' * (depth - 1) + b"1" + b"}" * (depth - 1) + b"}"


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 300, 1000])
def test_a_body_nested_too_deep_is_a_400(depth: int) -> None:
    with pytest.raises(BadRequest) as raised:
        load_object(nested(depth))
    assert f"more than {MAX_NESTING} levels" in raised.value.message


def test_a_body_at_the_limit_is_taken_and_can_be_written_back_wrapped() -> None:
    body = load_object(nested(MAX_NESTING))
    orjson.dumps({"wrapped": [{"once": {"more": body}}]})  # an upstream payload nests it further


def test_many_brackets_side_by_side_are_not_depth() -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "[{"}]} for _ in range(500)]
    assert len(load_object(orjson.dumps({"messages": messages}))["messages"]) == 500
    assert load_object(b'{"text": "' + b"[" * 5000 + b'"}') == {"text": "[" * 5000}
