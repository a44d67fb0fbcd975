"""A streamed answer as typed events, in no wire format.

Providers translate their stream into :data:`ProviderEvent` values; the gateway relays
them, and adds the :data:`RelayEnd` that closes every stream it serves: :class:`Settled`
(the generation is recorded, with its cost) or :class:`Failed` (an error the caller sees in
the stream). Each wire format renders these at the edge (``api/``); nothing below it builds
response JSON or server-sent events.

A provider's stream raises :class:`~genledger.core.failures.UpstreamFailure` when the
upstream fails midway; the gateway turns that into :class:`Failed`.

Events are values: nothing changes one after it is made. The per-chunk ones are not
``frozen`` only because a frozen dataclass takes twice as long to build (measured), and a
stream makes one or more per chunk.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from genledger.core.chat import Completion
from genledger.core.records import record
from genledger.core.usage import Usage


@dataclass(slots=True)
class TextDelta:
    """More of a choice's text. ``logprobs`` as the provider sent them, if any."""

    text: str
    choice: int = 0
    logprobs: Any = None


@dataclass(slots=True)
class ReasoningDelta:
    """More of a choice's reasoning (thinking) text."""

    text: str
    choice: int = 0


@dataclass(slots=True)
class RefusalDelta:
    """More of a choice's refusal text."""

    text: str
    choice: int = 0


@dataclass(slots=True)
class ToolCallDelta:
    """The start (with ``id`` and ``name``) or more ``arguments`` of a tool call.

    ``index`` numbers the tool calls of one choice, as OpenAI's chunks do.
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    choice: int = 0


@dataclass(slots=True)
class Finish:
    """A choice ended: OpenAI's finish reason, and the provider's own; ``stop_sequence`` the
    stop sequence that ended it, when the provider says (Anthropic does)."""

    reason: str | None
    native: str | None
    choice: int = 0
    stop_sequence: str | None = None


@dataclass(slots=True)
class UsageReport:
    """The tokens used so far (each report replaces the previous one)."""

    usage: Usage


@dataclass(slots=True)
class Identified:
    """The upstream's own id for the answer."""

    upstream_id: str


Delta = TextDelta | ReasoningDelta | RefusalDelta | ToolCallDelta | Finish
"""What a caller sees of the answer itself."""

ProviderEvent = Delta | UsageReport | Identified
"""What a provider's stream yields."""


@record
class Settled:
    """The generation is recorded: its usage (None when the provider reported none) and cost."""

    usage: Usage | None
    cost_pico: int


@record
class Failed:
    """The stream broke after it had begun; the caller sees this error in the stream."""

    status: int
    message: str
    metadata: dict[str, Any] | None = None


RelayEnd = Settled | Failed
RelayEvent = Delta | RelayEnd
"""What the gateway's relay yields to the edge: the answer's deltas, then one or two ends
(a :class:`Failed` is followed by :class:`Settled` when the usage so far was recorded)."""


@record
class Head:
    """What every rendering of a served answer starts with."""

    generation_id: str
    model: str
    provider_name: str
    created: int


@record
class Answer:
    """A whole answer, recorded: what the edge renders for a non-streamed request."""

    head: Head
    completion: Completion
    cost_pico: int


class Outcome:
    """How a relay ended, as far as its caller is concerned: ``failed`` once it yielded a
    :class:`Failed` (the answer is not whole: an idempotent retry must run it again)."""

    __slots__ = ("failed",)

    def __init__(self) -> None:
        self.failed = False


@record
class Relay:
    """A streamed answer under way: its head, the events to render as they come, and its
    outcome (filled in as it ends)."""

    head: Head
    events: AsyncGenerator[RelayEvent, None]
    outcome: Outcome = field(default_factory=Outcome)
