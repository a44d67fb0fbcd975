"""Idempotent retries: what a key's ``Idempotency-Key`` claim finds, and the answer kept for it.

The first call with an idempotency key claims it; a retry (same API key, same idempotency
key, within ``TTL``) finds the claim: still running (409 with ``Retry-After``), finished with
another body (422), or finished, with the stored answer to send again. A running claim holds
for a lease as long as the longest call (``Settings.longest_call``): one left by a process
that died is taken over after it, one whose call still runs never is. Answers are kept only
up to ``MAX_STORED_BYTES``; a larger one is remembered as too large, never sent twice.
"""

from __future__ import annotations

import contextlib
import hashlib
from datetime import timedelta
from typing import Any

import orjson

from genledger.core.records import record

TTL = timedelta(hours=24)
MAX_STORED_BYTES = 1024 * 1024
MAX_KEY_LENGTH = 255


def fingerprint(route: str, body: bytes) -> str:
    """What makes two calls the same call: the route and the body's JSON document, whatever
    the order of its members, its spacing or how it writes a number (``1`` and ``1.0``: a
    client may serialize a retry anew); a body that is not JSON, byte for byte."""
    with contextlib.suppress(orjson.JSONDecodeError):
        body = orjson.dumps(_numbers_alike(orjson.loads(body)), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(route.encode() + b"\n" + body).hexdigest()


def _numbers_alike(value: Any) -> Any:
    """``value`` with every whole float as the int it equals (JSON has one kind of number)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _numbers_alike(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers_alike(v) for v in value]
    return value


@record
class StoredAnswer:
    """The first call's answer as it was sent; ``body`` None when it was too large to keep."""

    status: int
    media_type: str
    body: bytes | None


@record
class Claimed:
    """This call is the first: run it, then finish or release the claim."""


@record
class Running:
    """The first call is still running."""


@record
class Mismatch:
    """The idempotency key was used with another body."""


@record
class Finished:
    answer: StoredAnswer


Claim = Claimed | Running | Mismatch | Finished
