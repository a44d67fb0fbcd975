"""``@record``: immutable to the type checker, a slotted dataclass with a frozen one's hash at run time."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import FrozenInstanceError, dataclass, field, replace
from pathlib import Path

import pytest

from genledger.core.records import record


@record
class Point:
    x: int
    y: int = 0
    tags: tuple[str, ...] = field(default=())


@record
class Named:
    name: str

    def __hash__(self) -> int:
        return 7


def test_a_record_is_a_dataclass_with_slots_and_its_fields_hash():
    point = Point(1, 2)
    assert point == Point(1, 2) and point != Point(2, 1)
    assert hash(point) == hash(Point(1, 2)) == hash((1, 2, ()))
    assert not hasattr(point, "__dict__")
    assert replace(point, y=5) == Point(1, 5)
    assert {point: "a"}[Point(1, 2)] == "a"


def test_a_hash_the_record_writes_is_kept():
    assert hash(Named("a")) == 7


def test_built_as_cheaply_as_a_plain_dataclass():
    # What a frozen dataclass costs on 3.11: one object.__setattr__ call per field. A record's
    # __init__ stores its fields as a plain class does.
    @dataclass(frozen=True)
    class Frozen:
        x: int

    assert "__setattr__" in Frozen.__init__.__code__.co_names
    assert "__setattr__" not in Point.__init__.__code__.co_names
    with pytest.raises(FrozenInstanceError):
        Frozen(1).x = 2  # type: ignore[misc]


def test_the_type_checker_refuses_an_assignment_to_a_field(tmp_path: Path):
    source = tmp_path / "assigns.py"
    source.write_text(
        textwrap.dedent(
            """
            from genledger.core.records import record

            @record
            class Point:
                x: int

            point = Point(1)
            point.x = 2
            """
        )
    )
    # In a process of its own: mypy freezes the garbage collector's objects (gc.freeze) and
    # leaves them so, which a later test of the gateway's own freeze would see.
    argv = [sys.executable, "-m", "mypy", str(source), "--follow-imports=silent", "--no-incremental"]
    done = subprocess.run(
        [*argv, "--config-file", "/dev/null"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out, status = done.stdout, done.returncode
    assert status == 1
    assert 'Property "x" defined in "Point" is read-only' in out
