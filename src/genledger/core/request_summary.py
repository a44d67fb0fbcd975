"""What one request's log line says beyond HTTP, filled in as the gateway learns it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from genledger.core.generation import Generation
from genledger.core.keys import KeyRecord


@dataclass(slots=True)
class RequestSummary:
    """The parts of a request the HTTP edge cannot see: who called, what was served, at what cost.

    Made by the request log for each request while its lines are on (``None`` otherwise, and
    nothing is filled in); the gateway calls :meth:`admitted`, then :meth:`recorded` or
    :meth:`failed`. It holds references, never copies: the line is built from them at the end.
    It never holds the key's secret, the prompt or the answer.

    A stream its caller left is recorded in the background once the request has ended: the
    gateway marks it :meth:`recording` as the stream is torn down, and the line, held in
    ``line`` meanwhile, goes out once the record is :meth:`settled` (written or not).
    """

    request_id: str
    key: KeyRecord | None = None
    model: str | None = None
    generation: Generation | None = None
    generation_id: str | None = None  # known once a provider answers, before it is recorded
    provider: str | None = None
    attempts: int = 0
    pending: bool = False  # a record still to be written after the request ended
    line: Callable[[], None] | None = None  # the request's line, waiting for that record

    def admitted(self, key: KeyRecord, model: str) -> None:
        self.key, self.model = key, model

    def answering(self, generation_id: str, provider: str, attempts: int) -> None:
        """A provider answers: the line names its generation even if it is never recorded."""
        self.generation_id, self.provider, self.attempts = generation_id, provider, attempts

    def recorded(self, generation: Generation) -> None:
        self.generation = generation
        self.model = generation.model
        self.provider = generation.provider_name
        self.attempts = len(generation.provider_responses)

    def failed(self, attempts: int, provider: str | None) -> None:
        self.attempts, self.provider = attempts, provider

    def recording(self) -> None:
        """The generation is being recorded in the background: the line waits for it."""
        self.pending = True

    def settled(self) -> None:
        """The background record is written (or failed): the line, if it waited, goes out."""
        self.pending = False
        line, self.line = self.line, None
        if line is not None:
            line()
