"""Token counts the gateway works out itself, when its provider did not say them.

A provider reports a stream's usage at its end. When the caller goes away (or the gateway
stops) before then, the provider has still read the prompt and generated what was relayed,
and bills for it; recording nothing would leave that spend out of the ledger and out of the
key's limit (a caller could read a whole answer and leave before its last chunk, for free).
The same holds for an answer whose provider reports no usage at all (some OpenAI-compatible
servers leave it out). So the record carries estimates: the prompt from its size, the completion from what was
relayed, both at :data:`BYTES_PER_TOKEN`, and never less than what the provider did report
(Anthropic tells the prompt's count as the stream begins) nor more than the request allowed.
"""

from __future__ import annotations

from dataclasses import replace

from genledger.core.chat import ChatRequest, Completion
from genledger.core.credits import Bounded, prompt_bound
from genledger.core.usage import Usage

BYTES_PER_TOKEN = 4
"""The usual rule for English text and code in the byte-pair tokenizers of today's models."""


def prompt_tokens(request: ChatRequest | Bounded) -> int:
    """About as many tokens as the prompt has: its bound (one token per byte) over four."""
    return -(-prompt_bound(request) // BYTES_PER_TOKEN)


def completion_tokens(characters: int, deltas: int, most: int) -> int:
    """About as many tokens as ``characters`` relayed in ``deltas`` non-empty pieces make.

    A streaming provider sends at least a token per piece, so there were no fewer tokens than
    pieces (which also counts scripts of a token per character or two, such as Chinese, that
    the four-characters rule undercounts); never more than ``most``, the request's bound.
    """
    return min(max(-(-characters // BYTES_PER_TOKEN), deltas), most)


def cut_short(reported: Usage | None, prompt: int, completion: int) -> Usage:
    """The usage of a stream cut short: what the provider reported, the estimates where more."""
    if reported is None:
        return Usage(prompt_tokens=prompt, completion_tokens=completion)
    return Usage(
        prompt_tokens=reported.prompt_tokens or prompt,
        completion_tokens=max(reported.completion_tokens, completion),
        cached_tokens=reported.cached_tokens,
        cache_write_tokens=reported.cache_write_tokens,
        reasoning_tokens=reported.reasoning_tokens,
        completion_image_tokens=reported.completion_image_tokens,
    )


def filled(reported: Usage, prompt: int, completion: int) -> Usage:
    """A report that counts no prompt, or no completion of an answer that has one (a count
    missing, 0, negative or not a number), though every generation has a prompt and an answer
    with words has tokens: each such count estimated (``prompt``; ``completion``, 0 for an empty
    answer), and no less than its parts the report did count; the rest as reported."""
    return replace(
        reported,
        prompt_tokens=reported.prompt_tokens
        or max(prompt, reported.cached_tokens + reported.cache_write_tokens),
        completion_tokens=reported.completion_tokens
        or max(completion, reported.reasoning_tokens + reported.completion_image_tokens),
    )


def answer_size(completion: Completion) -> tuple[int, int]:
    """The characters of a whole answer's completion, all choices together (text, reasoning,
    refusals, tool calls' names and arguments), and its non-empty pieces: at least a token each."""
    characters = pieces = 0
    for choice in completion.choices:
        texts = [choice.content, choice.reasoning, choice.refusal]
        texts += [(call.name or "") + (call.arguments or "") for call in choice.tool_calls]
        for text in texts:
            if text:
                characters += len(text)
                pieces += 1
    return characters, pieces
