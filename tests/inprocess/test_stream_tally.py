"""What a stream keeps of its text to store it: never more than content_storage.max_bytes, however
long the upstream streams (past it, nothing is kept: such content is not stored anyway)."""

from __future__ import annotations

from genledger.core.events import ReasoningDelta, TextDelta
from genledger.gateway.completions import _Tally


def test_text_and_reasoning_are_kept_up_to_the_room_then_dropped():
    tally = _Tally()
    tally.keep(100)
    for _ in range(9):
        assert tally.add(TextDelta("x" * 10))
    assert tally.add(ReasoningDelta("r" * 10))
    assert tally.text == ["x" * 10] * 9 and tally.reasoning == ["r" * 10]
    assert tally.add(TextDelta("y"))  # 101 characters: over
    assert tally.text is None and tally.reasoning is None
    for _ in range(10_000):
        assert tally.add(TextDelta("z" * 1000))  # still relayed, no longer kept
    assert tally.text is None


def test_nothing_is_kept_unless_asked():
    tally = _Tally()
    assert tally.add(TextDelta("hello"))
    assert tally.text is None and tally.reasoning is None
