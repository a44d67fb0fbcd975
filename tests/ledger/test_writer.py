"""The group commit's batching: which rows share a commit (a sink that only remembers)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from genledger.ledger.writer import LINGER_TURNS, MAX_BATCH, BatchWriter


class Batches:
    """A sink that keeps each batch it is given."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def commit(self, batch: Sequence[int]) -> None:
        self.batches.append(list(batch))

    async def close(self) -> None:
        pass


async def turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def write_after(writer: BatchWriter[int], row: int, n: int) -> None:
    await turns(n)
    await writer.write(row)


async def test_rows_that_arrive_on_the_next_turns_of_the_loop_join_the_same_commit():
    sink = Batches()
    writer = BatchWriter(sink)
    writer.start()
    # One row a turn: without lingering, the first is committed alone before the others come.
    await asyncio.gather(*(write_after(writer, row, row) for row in range(5)))
    await writer.close()
    assert sink.batches == [[0, 1, 2, 3, 4]]


async def test_a_lone_row_is_committed_after_one_turn_of_the_loop():
    sink = Batches()
    writer = BatchWriter(sink)
    writer.start()
    writing = asyncio.create_task(writer.write(1))
    await turns(4)  # the writer wakes, lingers one turn (nothing new), commits
    assert sink.batches == [[1]]
    assert writing.done()
    await writer.close()


async def test_lingering_ends_after_its_turns_even_while_rows_keep_coming():
    sink = Batches()
    writer = BatchWriter(sink)
    writer.start()
    rows = 4 * LINGER_TURNS
    await asyncio.gather(*(write_after(writer, row, row) for row in range(rows)))
    await writer.close()
    assert [row for batch in sink.batches for row in batch] == list(range(rows))
    assert len(sink.batches) > 1
    assert max(len(batch) for batch in sink.batches) <= LINGER_TURNS + 1


async def test_a_full_batch_does_not_linger_and_none_is_larger_than_the_limit():
    sink = Batches()
    writer = BatchWriter(sink)
    writer.start()
    rows = MAX_BATCH + 10
    await asyncio.gather(*(writer.write(row) for row in range(rows)))
    await writer.close()
    assert [len(batch) for batch in sink.batches] == [MAX_BATCH, 10]
