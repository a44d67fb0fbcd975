"""What an upstream reads as a chat prompt, in UTF-8 bytes: what a reservation must cover."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def compact_bytes(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def prompt_bytes(messages: Iterable[dict[str, Any]], params: dict[str, Any]) -> int:
    """Each message's text, every other field of it but its role as compact JSON, and the tools.

    A token covers at least one byte, so a prompt has at most this many tokens.
    """
    total = compact_bytes(params["tools"]) if "tools" in params else 0
    for message in messages:
        for field, value in message.items():
            if field == "content" and isinstance(value, str):
                total += len(value.encode())
            elif field != "role" and value is not None:
                total += compact_bytes(value)
    return total
