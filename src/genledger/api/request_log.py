"""Every request's id (``X-Request-Id``) and its one log line, for :class:`~genledger.api.edge.Edge`.

The id is the caller's ``X-Request-Id`` when it is 1 to 128 visible ASCII characters, else
a fresh one; it is returned on every response, recorded as the generation's ``request_id``
(through :func:`request_id_of`), and starts the request's log line.

The line is built at the end from what the request already holds (the status seen going
out, the clock, the :class:`~genledger.core.request_summary.RequestSummary` the gateway
filled in): no body is read or parsed. With request lines off, only the id is handled.

Only the response's start passes through the edge: a stream sends its body frames with the
server's own ``send`` (:func:`body_send`), so a stream's chunks cost no extra call.
"""

from __future__ import annotations

import functools
import random
import re
import time
from collections.abc import Callable

import orjson
from starlette.types import Scope, Send

from genledger.core.request_summary import RequestSummary
from genledger.logs import LineFormat, Timestamps

MAX_REQUEST_ID = 128
HEADER = b"x-request-id"
_VALID_ID = re.compile(rb"[\x21-\x7e]{1,%d}" % MAX_REQUEST_ID).fullmatch
_REQUEST_ID = "genledger.request_id"
_SUMMARY = "genledger.summary"
_SEND = "genledger.send"
_PICO_PER_USD = 10**12
_KEY_HASH_SHOWN = 12  # hex characters of the key's hash: enough to find it, not to guess it


def new_request_id() -> str:
    """``req-`` and 96 random bits in hex: unique, not secret (it is echoed, logged and carries
    no authority), so drawn from ``random`` (reseeded in a forked worker) and not from
    ``secrets``, which asks the kernel each time: a system call a request."""
    return f"req-{random.getrandbits(96):024x}"


def request_id_of(scope: Scope) -> str | None:
    """The request's id (``None`` for an app built without :class:`~genledger.api.edge.Edge`)."""
    request_id: str | None = scope.get(_REQUEST_ID)
    return request_id


def summary_of(scope: Scope) -> RequestSummary | None:
    """The summary the gateway fills in for the log line; ``None`` while request lines are off."""
    summary: RequestSummary | None = scope.get(_SUMMARY)
    return summary


def body_send(scope: Scope, send: Send) -> Send:
    """The ``send`` a response may use for its body once its start has gone out through ``send``.

    The server's own (it skips the edge, which only acts on the start): for streams, whose
    every chunk would otherwise pay a call there.
    """
    raw: Send = scope.get(_SEND, send)
    return raw


def request_id_from(value: bytes | None) -> str:
    """The caller's ``X-Request-Id`` (``value``) if 1 to 128 visible ASCII characters, else a new id."""
    if value is not None and _VALID_ID(value):
        return value.decode("ascii")
    return new_request_id()


def begin(scope: Scope, request_id: str, send: Send, *, summarized: bool) -> None:
    """Mark ``scope`` as request ``request_id``, whose server ``send`` is ``send``; with
    ``summarized``, give it the :class:`RequestSummary` the gateway fills in for its line."""
    scope[_REQUEST_ID] = request_id
    scope[_SEND] = send
    if summarized:
        scope[_SUMMARY] = RequestSummary(request_id)


def end(scope: Scope) -> None:
    """Forget the server's ``send`` (:func:`begin`): the server's request object holds the
    scope and ``send`` is its method, so keeping it would make each request a reference
    cycle, memory only the garbage collector gives back (measured: 10 MiB of RSS under load)."""
    scope.pop(_SEND, None)


class RequestLines:
    """Writes each request's line in ``format`` to ``write``, from what its scope holds."""

    def __init__(self, write: Callable[[bytes], object], format: LineFormat = "json") -> None:
        self._write = write
        self._render = _json_line if format == "json" else _text_line
        self._timestamps = Timestamps()

    def write(self, scope: Scope, status: int, latency_ms: float) -> None:
        """The line of the request of ``scope`` (begun with ``summarized``), answered ``status``;
        once its generation is recorded when that is still under way (a stream its caller left)."""
        now = self._timestamps(time.time())
        summary: RequestSummary = scope[_SUMMARY]
        if summary.pending:
            summary.line = functools.partial(self._written, now, scope, summary, status, latency_ms)
            return
        self._write(self._render(now, scope, summary, status, latency_ms))

    def _written(
        self, now: str, scope: Scope, summary: RequestSummary, status: int, latency_ms: float
    ) -> None:
        self._write(self._render(now, scope, summary, status, latency_ms))


def _fields(
    now: str, scope: Scope, summary: RequestSummary, status: int, latency_ms: float
) -> dict[str, object]:
    generation = summary.generation
    key = summary.key
    client = scope.get("client")
    return {
        "time": now,
        "level": "info",
        "request_id": summary.request_id,
        "method": scope["method"],
        "path": scope["path"],  # never the query string: it is the caller's to fill
        "status": status,
        "latency_ms": latency_ms,
        "client": client[0] if client else None,
        "generation_id": generation.id if generation is not None else summary.generation_id,
        "key_hash": key.hash[:_KEY_HASH_SHOWN] if key is not None else None,
        "key_name": key.name if key is not None else None,
        "model": summary.model,
        "provider": summary.provider,
        "attempts": summary.attempts,
        "cost_usd": generation.total_cost_pico / _PICO_PER_USD if generation is not None else None,
    }


def _json_line(now: str, scope: Scope, summary: RequestSummary, status: int, latency_ms: float) -> bytes:
    return orjson.dumps(_fields(now, scope, summary, status, latency_ms), option=orjson.OPT_APPEND_NEWLINE)


def _text_line(now: str, scope: Scope, summary: RequestSummary, status: int, latency_ms: float) -> bytes:
    fields = _fields(now, scope, summary, status, latency_ms)
    head = f"{fields['time']} {status} {fields['method']} {_shown(fields['path'])} {latency_ms:g}ms"
    parts = [head, f"req={_shown(summary.request_id)}"]
    for name, label in _TEXT_FIELDS:
        value = fields[name]
        if value is not None:
            parts.append(f"{label}={_shown(value)}")
    if summary.attempts:
        parts.append(f"attempts={summary.attempts}")
    return (" ".join(parts) + "\n").encode()


_TEXT_FIELDS = (
    ("generation_id", "gen"),
    ("key_hash", "key"),
    ("key_name", "key_name"),
    ("model", "model"),
    ("provider", "provider"),
    ("cost_usd", "cost_usd"),
    ("client", "client"),
)


def _shown(value: object) -> str:
    """``value`` on one line: a text with spaces or control characters is quoted and escaped."""
    text = value if isinstance(value, str) else f"{value}"
    if text.isprintable() and " " not in text and text:
        return text
    return orjson.dumps(text).decode()
