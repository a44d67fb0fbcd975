"""Generation ids: their shape, their order in time, and characters uniformly random over base62."""

from __future__ import annotations

import collections
import os
import re
import secrets
import string
import time

from genledger.core import ids
from genledger.core.ids import GenerationIds, new_generation_id


def test_a_generation_id_is_gen_the_time_in_milliseconds_and_22_base62_characters() -> None:
    before = time.time_ns() // 1_000_000
    made = [new_generation_id() for _ in range(2000)]
    after = time.time_ns() // 1_000_000
    assert len(set(made)) == 2000
    assert all(re.fullmatch(r"gen-[0-9]{13}[0-9A-Za-z]{22}", made_id) for made_id in made)
    assert all(before <= int(made_id[4:17]) <= after for made_id in made)
    assert len(made[0]) == 39  # the ledger's id columns hold 40


def test_ids_made_later_sort_after() -> None:
    made = []
    for _ in range(5):
        made.append(new_generation_id())
        time.sleep(0.002)
    assert made == sorted(made)


def test_every_base62_character_is_equally_likely() -> None:
    counts = collections.Counter("".join(ids._base62(24, secrets.token_bytes) for _ in range(20_000)))
    assert set(counts) == set(string.digits + string.ascii_letters)
    expected = 20_000 * 24 / 62  # 7742 each (sd 88); all 256 bytes modulo 62 would give eight 25% more
    assert all(abs(count - expected) < 0.06 * expected for count in counts.values()), counts


def test_a_draw_short_of_characters_draws_again() -> None:
    draws = iter([bytes([255] * 20 + [1] * 12), bytes([2] * 32)])  # 12 kept, then 32
    assert ids._base62(24, lambda n: next(draws)) == "1" * 12 + "2" * 12


def test_generation_ids_from_blocks_are_alike_and_ask_the_kernel_once_a_block(monkeypatch) -> None:
    calls = []

    def token_bytes(n: int) -> bytes:
        calls.append(n)
        return os.urandom(n)

    monkeypatch.setattr(ids.secrets, "token_bytes", token_bytes)
    source = GenerationIds()
    made = [source.new() for _ in range(2000)]
    assert len(set(made)) == 2000
    assert all(re.fullmatch(r"gen-[0-9]{13}[0-9A-Za-z]{22}", made_id) for made_id in made)
    # 32 bytes an id (one in 400,000 needs 64): 64 ids a block.
    assert set(calls) == {GenerationIds.BLOCK} and 2000 / 64 <= len(calls) <= 2000 / 64 + 2


def test_a_forked_child_does_not_hand_out_its_parent_s_next_ids() -> None:
    source = GenerationIds()
    source.new()  # a block is drawn: 63 ids of it are left, in both processes after the fork
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child's)
        os.write(write, "".join(source.new()[-22:] for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    theirs = os.read(read, 1000).decode()
    os.close(read)
    ours = "".join(source.new()[-22:] for _ in range(5))
    assert len(theirs) == len(ours) == 110 and theirs != ours
