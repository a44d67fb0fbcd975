"""``@record``: the server's value types, immutable to the type checker and cheap to build.

A ``@dataclass(frozen=True)`` enforces its immutability at run time by setting each field
in ``__init__`` through ``object.__setattr__``: on Python 3.11 a lookup on ``object`` and a
call through a slot wrapper per field, where a plain class stores the field in one
specialized bytecode. Counted under callgrind on the chat completion path, where a request
builds its request, answer, usage, cost and ledger record as such values, that was a tenth
of all the instructions the gateway ran per request (1,332k -> 1,194k with nothing else
changed; ``bench/instructions.py``).

So a record is a slotted dataclass whose fields mypy treats as read-only (the decorator is
a ``dataclass_transform`` with ``frozen_default``: an assignment to a field, anywhere in
the package, fails the type check that CI runs), with a field-wise ``__hash__`` as a frozen
dataclass has. Nothing stops an assignment at run time; none is written. The client's
models (``genledger.client``) stay frozen dataclasses: they are handed to callers whose
code no type check of ours sees, and they are not on the gateway's hot path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(cls: type[T], /) -> type[T]:
    """A value type: ``@dataclass(frozen=True, slots=True)`` to the type checker, and to
    everything at run time but the check on assignment (see the module's docstring)."""
    # A frozen dataclass's hash (its fields'), unless the class writes its own.
    return dataclass(cls, slots=True, unsafe_hash="__hash__" not in cls.__dict__)
