"""The built-in demo provider: deterministic answers with realistic token counts, no network."""

from __future__ import annotations

import asyncio
import hashlib
import math
import struct
import time
import uuid

from genledger.config import ProviderConfig
from genledger.core.chat import Choice, Completion
from genledger.core.embeddings import Embeddings
from genledger.core.events import Finish, Identified, TextDelta, UsageReport
from genledger.core.usage import Usage
from genledger.providers.base import EmbeddingCall, EventStream, PromptCall, UpstreamCall

_CHARS_PER_TOKEN = 4
_TOKENS_PER_MESSAGE = 4  # role markers and separators, as chat templates add them
_DEFAULT_REPLY_WORDS = 40
DEMO_EMBEDDING_DIMENSIONS = 256
_SUPPORTED = frozenset({"max_tokens", "dimensions"})


def demo_vector(text: str, dimensions: int) -> tuple[float, ...]:
    """A deterministic unit vector for ``text``: SHA-256 in counter mode, as floats in [-1, 1]."""
    raw = b"".join(
        hashlib.sha256(counter.to_bytes(4, "big") + text.encode()).digest()
        for counter in range(math.ceil(dimensions * 4 / 32))
    )
    values = [v / 2**31 for v in struct.unpack(f">{dimensions}i", raw[: dimensions * 4])]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return tuple(v / norm for v in values)


class DemoProvider:
    """Answers every request from the prompt alone, optionally after ``config.delay`` seconds.

    It honours ``max_tokens`` (and ``dimensions`` of embeddings) and no sampling option.
    """

    supported_parameters = _SUPPORTED

    def __init__(self, name: str, config: ProviderConfig) -> None:
        self.name = name
        self.display_name = config.shown_as(name)
        self._delay = config.delay

    def _answer(self, call: UpstreamCall) -> tuple[list[str], Usage, str]:
        request = call.request
        last_user = next(
            (m.get("content") for m in reversed(request.messages) if m.get("role") == "user"), ""
        )
        said = last_user if isinstance(last_user, str) else "something"
        words = f"This is the genledger demo model. You said: {said}".split()
        filler = [
            "Every",
            "call",
            "through",
            "genledger",
            "is",
            "recorded",
            "with",
            "its",
            "tokens,",
            "cost",
            "and",
            "latency.",
        ]
        while len(words) < _DEFAULT_REPLY_WORDS:
            words += filler
        words = words[:_DEFAULT_REPLY_WORDS]
        finish = "stop"
        if request.max_tokens is not None and request.max_tokens < len(words):
            words = words[: request.max_tokens]
            finish = "length"
        prompt_tokens = request.prompt_chars() // _CHARS_PER_TOKEN + _TOKENS_PER_MESSAGE * len(
            request.messages
        )
        return words, Usage(prompt_tokens=max(prompt_tokens, 1), completion_tokens=len(words)), finish

    async def complete(self, call: UpstreamCall) -> Completion:
        if self._delay:
            await asyncio.sleep(self._delay)
        words, usage, finish = self._answer(call)
        choice = Choice(content=" ".join(words), finish_reason=finish, native_finish_reason=finish)
        return Completion(
            choices=(choice,), usage=usage, upstream_id=f"demo-{uuid.uuid4().hex}", created=int(time.time())
        )

    async def stream(self, call: UpstreamCall) -> EventStream:
        return self._events(call)

    async def _events(self, call: UpstreamCall) -> EventStream:
        words, usage, finish = self._answer(call)
        yield Identified(f"demo-{uuid.uuid4().hex}")
        step = self._delay / max(len(words), 1)
        for index, word in enumerate(words):
            if step:
                await asyncio.sleep(step)
            yield TextDelta(word if index == 0 else " " + word)
            # The usage so far, as a provider that reports it per chunk would.
            yield UsageReport(Usage(prompt_tokens=usage.prompt_tokens, completion_tokens=index + 1))
        yield Finish(finish, finish)

    async def embed(self, call: EmbeddingCall) -> Embeddings:
        """One :func:`demo_vector` per input; a token array embeds as its ids' text."""
        if self._delay:
            await asyncio.sleep(self._delay)
        request = call.request
        dimensions = request.dimensions or DEMO_EMBEDDING_DIMENSIONS
        texts = [item if isinstance(item, str) else " ".join(map(str, item)) for item in request.inputs]
        tokens = sum(
            max(len(item) // _CHARS_PER_TOKEN, 1) if isinstance(item, str) else len(item)
            for item in request.inputs
        )
        return Embeddings(
            vectors=tuple(demo_vector(text, dimensions) for text in texts),
            usage=Usage(prompt_tokens=tokens),
            upstream_id=f"demo-{uuid.uuid4().hex}",
        )

    def _prompt_answer(self, call: PromptCall) -> tuple[list[str], Usage, str]:
        request = call.request
        words = ["The", "genledger", "demo", "model", "continues:", *request.prompt.split()[-8:]]
        while len(words) < _DEFAULT_REPLY_WORDS:
            words.append("recorded.")
        words = words[:_DEFAULT_REPLY_WORDS]
        finish = "stop"
        if request.max_tokens is not None and request.max_tokens < len(words):
            words, finish = words[: request.max_tokens], "length"
        prompt_tokens = max(len(request.prompt) // _CHARS_PER_TOKEN, 1)
        return words, Usage(prompt_tokens=prompt_tokens, completion_tokens=len(words)), finish

    async def complete_prompt(self, call: PromptCall) -> Completion:
        if self._delay:
            await asyncio.sleep(self._delay)
        words, usage, finish = self._prompt_answer(call)
        choice = Choice(content=" " + " ".join(words), finish_reason=finish, native_finish_reason=finish)
        return Completion(
            choices=(choice,), usage=usage, upstream_id=f"demo-{uuid.uuid4().hex}", created=int(time.time())
        )

    async def stream_prompt(self, call: PromptCall) -> EventStream:
        return self._prompt_events(call)

    async def _prompt_events(self, call: PromptCall) -> EventStream:
        words, usage, finish = self._prompt_answer(call)
        yield Identified(f"demo-{uuid.uuid4().hex}")
        step = self._delay / max(len(words), 1)
        for word in words:
            if step:
                await asyncio.sleep(step)
            yield TextDelta(" " + word)
        yield UsageReport(usage)
        yield Finish(finish, finish)

    async def aclose(self) -> None:
        return None
