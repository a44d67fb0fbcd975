"""A provider that answers what the test scripted: events, waits and failures, in order."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from genledger.core.chat import Choice, Completion
from genledger.core.embeddings import Embeddings
from genledger.core.events import Finish, Identified, ProviderEvent, TextDelta, UsageReport
from genledger.core.failures import FailureKind, UpstreamFailure
from genledger.core.usage import Usage
from genledger.providers.base import EmbeddingCall, EventStream, PromptCall, UpstreamCall

Step = ProviderEvent | UpstreamFailure | asyncio.Event
"""An event to yield, a failure to raise, or an event to wait for."""


DEFAULT_USAGE = Usage(10, 5)


def answer(
    text: str = "Hello there", usage: Usage | None = DEFAULT_USAGE, upstream_id: str = "up-1"
) -> list[Step]:
    """The steps of an ordinary streamed answer."""
    steps: list[Step] = [Identified(upstream_id)]
    steps += [TextDelta(word if i == 0 else " " + word) for i, word in enumerate(text.split())]
    steps.append(Finish("stop", "stop"))
    if usage is not None:
        steps.append(UsageReport(usage))
    return steps


@dataclass
class Script:
    """One call's behaviour: fail before answering, or run ``steps``."""

    steps: list[Step] = field(default_factory=answer)
    fail: UpstreamFailure | None = None
    stall: asyncio.Event | None = None  # wait for this before answering at all


class ScriptedProvider:
    def __init__(self, name: str, display_name: str | None = None) -> None:
        self.name = name
        self.display_name = display_name or name
        self.scripts: deque[Script] = deque()
        self.calls: list[UpstreamCall] = []
        self.open_streams = 0
        self.closed_streams = 0

    def then(self, *scripts: Script) -> ScriptedProvider:
        self.scripts.extend(scripts)
        return self

    def failure(self, kind: FailureKind, **kwargs: object) -> UpstreamFailure:
        return UpstreamFailure(
            kind, f"{self.display_name} failed: {kind.value}", provider_name=self.display_name, **kwargs
        )  # type: ignore[arg-type]

    async def _start(self, call: UpstreamCall) -> Script:
        self.calls.append(call)
        script = self.scripts.popleft() if self.scripts else Script()
        if script.stall is not None:
            await script.stall.wait()
        if script.fail is not None:
            raise script.fail
        return script

    async def complete(self, call: UpstreamCall) -> Completion:
        script = await self._start(call)
        text, usage, upstream_id, finish = [], None, None, None
        for step in script.steps:
            if isinstance(step, UpstreamFailure):
                raise step
            if isinstance(step, asyncio.Event):
                await step.wait()
            elif isinstance(step, TextDelta):
                text.append(step.text)
            elif isinstance(step, UsageReport):
                usage = step.usage
            elif isinstance(step, Identified):
                upstream_id = step.upstream_id
            elif isinstance(step, Finish):
                finish = step
        choice = Choice(
            content="".join(text),
            finish_reason=finish.reason if finish else None,
            native_finish_reason=finish.native if finish else None,
        )
        return Completion(choices=(choice,), usage=usage, upstream_id=upstream_id, created=1700000000)

    async def stream(self, call: UpstreamCall) -> EventStream:
        script = await self._start(call)
        return self._events(script)

    async def _events(self, script: Script) -> EventStream:
        self.open_streams += 1
        try:
            for step in script.steps:
                if isinstance(step, UpstreamFailure):
                    raise step
                if isinstance(step, asyncio.Event):
                    await step.wait()
                else:
                    yield step
        finally:
            self.open_streams -= 1
            self.closed_streams += 1

    async def aclose(self) -> None:
        return None


class ScriptedEmbedder(ScriptedProvider):
    """Scripted, and also answering embeddings (one vector per input) and prompt completions.

    An embeddings call runs its script like a whole answer: the script's usage is reported
    and its text ignored; each input's vector is ``(len(input), index)``.
    """

    async def embed(self, call: EmbeddingCall) -> Embeddings:
        completion = await self.complete(call)  # type: ignore[arg-type]  # records the call alike
        vectors = tuple((float(len(item)), float(index)) for index, item in enumerate(call.request.inputs))
        return Embeddings(vectors=vectors, usage=completion.usage, upstream_id=completion.upstream_id)

    async def complete_prompt(self, call: PromptCall) -> Completion:
        return await self.complete(call)  # type: ignore[arg-type]

    async def stream_prompt(self, call: PromptCall) -> EventStream:
        return await self.stream(call)  # type: ignore[arg-type]
