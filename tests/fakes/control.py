"""Behaviour control shared by the fake upstreams: behaviour specs, the behaviour queue and the stats.

A *behaviour* tells a fake upstream how to answer the next generation request (``ok``, ``stall``,
``status`` ...) and carries its parameters (``delay``, ``status``, ``retry_after`` ...).  It is given
either per request, with the ``X-Fake-Behavior`` header, or ahead of time through the control API
(``POST /_control/behavior``), which feeds :class:`ControlState`.

Spec syntax (header value, or the ``behavior`` field of the control JSON)::

    name[:primary][;key=value]...

    ok                      ok:50 (delay_ms)        ok;tokens=3;cached_tokens=2
    stall:2.5               slow:0.2                status:429;retry_after=0.1
    stall_mid_stream:0.5    die_mid_stream:3        overloaded     garbage     empty
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

import orjson

JSONDecodeError = orjson.JSONDecodeError


def dumps(obj: Any) -> bytes:
    """JSON-encode to bytes (orjson: the fakes are a benchmark baseline)."""
    return orjson.dumps(obj)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


# --------------------------------------------------------------------------------------------- behaviours

OK: Final = "ok"
STALL: Final = "stall"
SLOW: Final = "slow"
STALL_MID_STREAM: Final = "stall_mid_stream"
DIE_MID_STREAM: Final = "die_mid_stream"
ERROR_MID_STREAM: Final = "error_mid_stream"
STATUS: Final = "status"
OVERLOADED: Final = "overloaded"
GARBAGE: Final = "garbage"
EMPTY: Final = "empty"

# behaviour -> the parameter set by the ``name:value`` short form (None: the short form takes no value)
PRIMARY_PARAM: Final[dict[str, str | None]] = {
    OK: "delay_ms",
    STALL: "delay",
    SLOW: "delay",
    STALL_MID_STREAM: "delay",
    DIE_MID_STREAM: "chunks",
    ERROR_MID_STREAM: "chunks",
    STATUS: "status",
    OVERLOADED: "retry_after",
    GARBAGE: None,
    EMPTY: None,
}
BEHAVIORS: Final = frozenset(PRIMARY_PARAM)

# every parameter any behaviour understands, with its type
PARAM_TYPES: Final[dict[str, type]] = {
    "delay": float,  # seconds: stall / slow before the first byte, stall_mid_stream mid-way
    "delay_ms": float,  # milliseconds of added latency before any answer (benchmarks)
    "chunk_delay_ms": float,  # milliseconds between stream events
    "head_delay": float,  # seconds between a stream's response headers and its first event
    "chunks": int,  # content chunks sent before *_mid_stream strikes
    "status": int,  # HTTP status of ``status``
    "retry_after": float,  # seconds, sent as Retry-After and retry-after-ms
    "message": str,  # error message override
    "code": str,  # error code override (OpenAI ``error.code``)
    "error_type": str,  # error type override (``error.type``)
    "tokens": int,  # completion length in words/tokens (overrides the default and, for OpenAI, max_tokens)
    "cached_tokens": int,  # OpenAI usage.prompt_tokens_details.cached_tokens
    "reasoning_tokens": int,  # OpenAI usage.completion_tokens_details.reasoning_tokens
    "prompt_tokens": int,  # OpenAI usage.prompt_tokens reported, whatever the prompt (absurd counts)
    "usage": str,  # OpenAI: "none" leaves usage out (no usage object, no usage chunk)
    "done": str,  # OpenAI streams: "none" closes the stream without its data: [DONE]
    "cache_read": int,  # Anthropic usage.cache_read_input_tokens
    "cache_creation": int,  # Anthropic usage.cache_creation_input_tokens
}

DEFAULTS: Final[dict[str, dict[str, Any]]] = {
    STALL: {"delay": 30.0},
    SLOW: {"delay": 1.0},
    STALL_MID_STREAM: {"delay": 30.0, "chunks": 2},
    DIE_MID_STREAM: {"chunks": 2},
    ERROR_MID_STREAM: {"chunks": 2},
    STATUS: {"status": 500},
}


class BehaviorError(ValueError):
    """An unknown behaviour, parameter, or a parameter value of the wrong type."""


@dataclass(frozen=True, slots=True, eq=True)
class Behavior:
    """A behaviour name and its parameters, defaults filled in. Build with :func:`make_behavior`."""

    name: str = OK
    params: Mapping[str, Any] = field(default_factory=dict)

    def get_float(self, key: str, default: float = 0.0) -> float:
        value = self.params.get(key)
        return default if value is None else float(value)

    def get_int(self, key: str, default: int | None = None) -> int | None:
        value = self.params.get(key)
        return default if value is None else int(value)

    def get_str(self, key: str) -> str | None:
        value = self.params.get(key)
        return None if value is None else str(value)

    def to_json(self) -> dict[str, Any]:
        return {"behavior": self.name, **self.params}


OK_BEHAVIOR: Final = Behavior(OK, {})


def _coerce(key: str, value: Any) -> Any:
    kind = PARAM_TYPES.get(key)
    if kind is None:
        raise BehaviorError(f"unknown behavior parameter {key!r} (known: {', '.join(sorted(PARAM_TYPES))})")
    if value is None:
        return None
    try:
        if kind is int and isinstance(value, str):
            return int(float(value))
        if kind is str:
            return str(value)
        return kind(value)
    except (TypeError, ValueError):
        raise BehaviorError(f"behavior parameter {key!r} must be {kind.__name__}, got {value!r}") from None


def make_behavior(name: str, params: Mapping[str, Any] | None = None) -> Behavior:
    """Validate ``name`` and ``params`` and fill in the behaviour's defaults."""
    if name not in BEHAVIORS:
        raise BehaviorError(f"unknown behavior {name!r} (known: {', '.join(sorted(BEHAVIORS))})")
    merged = dict(DEFAULTS.get(name, {}))
    for key, value in (params or {}).items():
        coerced = _coerce(key, value)
        if coerced is not None:
            merged[key] = coerced
    if not merged and name == OK:
        return OK_BEHAVIOR
    return Behavior(name, merged)


@lru_cache(maxsize=256)
def parse_spec(spec: str) -> Behavior:
    """Parse ``name[:primary][;key=value]...`` (the ``X-Fake-Behavior`` header syntax)."""
    head, *extras = (part.strip() for part in spec.strip().split(";"))
    name, sep, primary = head.partition(":")
    name = name.strip().lower()
    params: dict[str, Any] = {}
    if sep:
        key = PRIMARY_PARAM.get(name)
        if name in PRIMARY_PARAM and key is None:
            raise BehaviorError(f"behavior {name!r} takes no value (got {head!r})")
        if key is not None:
            params[key] = primary.strip()
    for extra in extras:
        if not extra:
            continue
        key, sep, value = extra.partition("=")
        if not sep:
            raise BehaviorError(f"expected key=value in behavior spec, got {extra!r}")
        params[key.strip()] = value.strip()
    return make_behavior(name, params)


def behavior_from_json(data: Mapping[str, Any]) -> tuple[Behavior, int | None, str | None]:
    """``{"behavior": spec, "times": N|null, "model": str|null, **params}`` -> (behavior, times, model)."""
    spec = data.get("behavior")
    if not isinstance(spec, str):
        raise BehaviorError('"behavior" (a string) is required')
    times = data.get("times")
    if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 1):
        raise BehaviorError('"times" must be a positive integer or null')
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise BehaviorError('"model" must be a string or null')
    base = parse_spec(spec)
    extra = {k: v for k, v in data.items() if k not in ("behavior", "times", "model")}
    behavior = make_behavior(base.name, {**base.params, **extra}) if extra else base
    return behavior, times, model


# ------------------------------------------------------------------------------------------------ state


@dataclass(slots=True)
class _Queued:
    behavior: Behavior
    remaining: int
    model: str | None


@dataclass(slots=True)
class _Recorded:
    method: str
    path: str
    headers: Mapping[str, str]  # the request's own (immutable) header mapping, converted on demand
    body: Any
    behavior: str

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "headers": {key.lower(): value for key, value in self.headers.items()},
            "json": copy.deepcopy(self.body),
            "behavior": self.behavior,
        }


class ControlState:
    """The behaviour queue, the standing behaviours and the counters of one fake upstream.

    Selection for a request to ``model``: the first *queued* entry (``times=N``) whose model is
    ``None`` or ``model`` (consumed, in order); else the *standing* behaviour (``times=None``) set for
    ``model``, else the one set for all models; else ``ok``.  Setting a standing behaviour replaces the
    previous standing one of the same scope.  Not thread-safe: use it from the server's event loop.
    """

    def __init__(self, history: int = 100) -> None:
        self._queue: list[_Queued] = []
        self._standing: dict[str | None, Behavior] = {}
        self._history: deque[_Recorded] = deque(maxlen=history)
        self.open_streams = 0  # a gauge: survives reset()
        self._zero()

    def _zero(self) -> None:
        self.requests = 0
        self.by_behavior: dict[str, int] = {}
        self.models_requests = 0
        self.completed_streams = 0
        self.cancelled_streams = 0
        self.cancelled_requests = 0
        self.dropped_connections = 0  # cut by die_mid_stream
        self._history.clear()

    # -- control

    def set_behavior(self, behavior: Behavior, times: int | None = None, model: str | None = None) -> None:
        if times is None:
            self._standing[model] = behavior
        elif times < 1:
            raise BehaviorError("times must be >= 1 or None")
        else:
            self._queue.append(_Queued(behavior, times, model))

    def reset(self) -> None:
        """Forget queued and standing behaviours, zero the counters, drop the request history."""
        self._queue.clear()
        self._standing.clear()
        self._zero()

    def pending(self) -> list[dict[str, Any]]:
        queued = [{**q.behavior.to_json(), "times": q.remaining, "model": q.model} for q in self._queue]
        standing = [{**b.to_json(), "times": None, "model": m} for m, b in self._standing.items()]
        return queued + standing

    # -- per request

    def select(self, model: str | None) -> Behavior:
        queue = self._queue
        if queue:
            for index, entry in enumerate(queue):
                if entry.model is None or entry.model == model:
                    entry.remaining -= 1
                    if entry.remaining <= 0:
                        del queue[index]
                    return entry.behavior
        standing = self._standing
        if standing:
            behavior = standing.get(model) if model is not None else None
            return behavior or standing.get(None) or OK_BEHAVIOR
        return OK_BEHAVIOR

    def record(self, method: str, path: str, headers: Mapping[str, str], body: Any, behavior: str) -> None:
        self.requests += 1
        by_behavior = self.by_behavior
        by_behavior[behavior] = by_behavior.get(behavior, 0) + 1
        self._history.append(_Recorded(method, path, headers, body, behavior))

    # -- reading

    def history(self) -> list[dict[str, Any]]:
        return [entry.to_json() for entry in self._history]

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_behavior": dict(self.by_behavior),
            "models_requests": self.models_requests,
            "open_streams": self.open_streams,
            "completed_streams": self.completed_streams,
            "cancelled_streams": self.cancelled_streams,
            "cancelled_requests": self.cancelled_requests,
            "dropped_connections": self.dropped_connections,
            "pending_behaviors": self.pending(),
            "last_request": self._history[-1].to_json() if self._history else None,
        }
