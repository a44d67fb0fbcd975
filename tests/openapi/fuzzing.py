"""Schemathesis against a live gateway: every operation of its own document, a few examples each.

:func:`fuzz` loads the document the gateway serves, and for each operation sends its
documented example, then ``examples`` generated cases that fit the schema (positive) and
``examples`` that do not (negative). Every answer is checked by schemathesis against the
document (status documented, content type, required headers, body schema), and by
:func:`server_fault` for 5xx. Violations are collected, not raised one at a time, so that one
run reports them all (and hypothesis spends no time shrinking).
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core import NOT_SET
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from genledger.api.openapi import OPENAPI_PATH

CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
REQUEST_TIMEOUT_S = 10.0


@dataclass
class Tally:
    """What a run did: operations tried, examples sent, statuses seen, violations found."""

    operations: int = 0
    examples: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)

    def summary(self, name: str) -> str:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        return (
            f"schemathesis [{name}]: {self.operations} operations tried, {self.examples} examples, "
            f"violations: {len(self.violations)} (statuses {statuses})"
        )


def server_fault(path: str, status: int, allowed: Callable[[str, int], bool]) -> str | None:
    """A 5xx is a server fault unless ``allowed`` says it is an upstream's failure there."""
    if status >= 500 and not allowed(path, status):
        return f"a {status} (server error)"
    return None


def _failure(exc: BaseException) -> str:
    return " | ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())[:600]


def _cases(operation: Any, examples: int) -> Iterable[tuple[str, Any, int]]:
    """(mode, strategy, how many) for an operation: its examples, then positive and negative."""
    from_examples = operation.get_strategies_from_examples()
    if from_examples:
        yield "example", st.one_of(from_examples), 1
    yield "positive", operation.as_strategy(GenerationMode.POSITIVE), examples
    yield "negative", operation.as_strategy(GenerationMode.NEGATIVE), examples


@dataclass(frozen=True)
class Edge:
    """A request the generators seldom make, sent as a case of its operation."""

    method: str
    path: str
    query: dict[str, Any] | None = None
    body: Any = None
    path_parameters: dict[str, Any] | None = None


def _cursor(created_at: Any, generation_id: Any = "gen-x") -> str:
    return base64.urlsafe_b64encode(orjson.dumps([created_at, generation_id])).decode().rstrip("=")


_YEAR_0 = "0001-01-01T00:00:00+14:00"  # year 0 in UTC
_YEAR_10000 = "9999-12-31T23:59:59-14:00"  # year 10000 in UTC
_HUGE = "1" * 5000  # beyond int()'s digit limit
_CHAT = {"model": "genledger/demo", "messages": [{"role": "user", "content": "Hi"}]}
EDGES = (
    Edge("GET", "/api/v1/generations", {"created_after": _YEAR_0}),
    Edge("GET", "/api/v1/generations", {"created_before": _YEAR_10000}),
    Edge("GET", "/api/v1/generations/export", {"created_after": _YEAR_0}),
    Edge("GET", "/api/v1/generations", {"limit": "²"}),
    Edge("GET", "/api/v1/generations", {"limit": _HUGE}),
    Edge("GET", "/api/v1/generations", {"cursor": _cursor(_YEAR_0)}),
    Edge("GET", "/api/v1/generations", {"cursor": _cursor(1, 2)}),
    Edge("GET", "/api/v1/generations", {"cursor": _cursor(["2026-01-01"], {"id": 1})}),
    Edge("GET", "/api/v1/generations", {"min_cost": "1e999999999"}),
    Edge("GET", "/api/v1/activity", {"date": "9999-12-31"}),
    Edge("GET", "/api/v1/activity", {"date": "0001-01-01"}),
    Edge("POST", "/api/v1/keys", body={"name": "edge-1", "expires_at": _YEAR_0}),
    Edge("POST", "/api/v1/keys", body={"name": "edge-2", "expires_at": _YEAR_10000}),
    Edge("POST", "/api/v1/keys", body={"name": "edge-3", "requests_per_minute": 2**63}),
    Edge("POST", "/api/v1/keys", body={"name": "edge-4", "tokens_per_minute": 2**31}),
    Edge("POST", "/api/v1/keys", body={"name": "edge-5", "limit": "1e999999999"}),
    Edge("PATCH", "/api/v1/keys/{hash}", body={"expires_at": _YEAR_0}, path_parameters={"hash": "0" * 64}),
    Edge(
        "POST",
        "/api/v1/chat/completions",
        body={**_CHAT, "provider": {"max_price": {"prompt": "1e999999999"}}},
    ),
    Edge("POST", "/api/v1/chat/completions", body={**_CHAT, "max_tokens": 2**64 - 1}),
    Edge("POST", "/api/v1/chat/completions", body={**_CHAT, "temperature": 1e308, "seed": -(2**63)}),
    Edge("POST", "/api/v1/chat/completions", body={**_CHAT, "metadata": {"k": "v" * 10_000}}),
    Edge("POST", "/api/v1/keys", body={"name": "nul\u0000name"}),
    Edge("POST", "/api/v1/keys", body={"name": "label", "label": "nul\u0000"}),
    Edge("POST", "/api/v1/chat/completions", body={**_CHAT, "user": "nul\u0000user"}),
    Edge("POST", "/api/v1/chat/completions", body={**_CHAT, "session_id": "nul\u0000"}),
    Edge("POST", "/api/v1/chat/completions", body={**_CHAT, "metadata": {"k\u0000": "v\u0000"}}),
    Edge("GET", "/api/v1/generations", {"model": "nul\u0000"}),
    Edge("GET", "/api/v1/generations", {"metadata[k\u0000]": "v"}),
    Edge("POST", "/api/v1/generation/feedback", body={"generation_id": "x\u0000", "category": "other"}),
    Edge("GET", "/api/v1/generation", {"id": "gen-\u0000"}),
    Edge("GET", "/api/v1/keys/{hash}", path_parameters={"hash": "\u0000"}),
    Edge(
        "POST",
        "/api/v1/messages",
        body={
            "model": "genledger/demo",
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "\u0000"}],
        },
    ),
    Edge("POST", "/api/v1/responses", body={"model": "genledger/demo", "input": "\u0000"}),
    Edge("POST", "/api/v1/embeddings", body={"model": "genledger/demo-embedding", "input": ["ok", "\u0000"]}),
)
"""Values at the ends of ranges, each once: dates that leave UTC's years, digits that are not
ASCII, numbers past 64 bits or a column's range, NUL characters (PostgreSQL's text has none)."""


def probe(
    base_url: str,
    headers_for: Callable[[str], dict[str, str]],
    edges: Iterable[Edge],
    allowed_5xx: Callable[[str, int], bool],
    tally: Tally,
) -> list[int]:
    """Send each edge as a case of its operation, checked as :func:`fuzz` checks its cases;
    the statuses, in order."""
    document = httpx.get(base_url + OPENAPI_PATH, timeout=REQUEST_TIMEOUT_S).json()
    schema = schemathesis.openapi.from_dict(document)
    statuses = []
    for edge in edges:
        operation = schema[edge.path][edge.method]
        body = NOT_SET if edge.body is None else edge.body
        case = operation.Case(query=edge.query, body=body, path_parameters=edge.path_parameters)
        statuses.append(
            _check(case, f"{edge.method} {edge.path} (edge)", base_url, headers_for, allowed_5xx, tally)
        )
    return statuses


def fuzz(
    base_url: str,
    headers_for: Callable[[str], dict[str, str]],
    *,
    examples: int,
    allowed_5xx: Callable[[str, int], bool],
    only: Callable[[str], bool] = lambda path: True,
    before_call: Callable[[Any], None] = lambda case: None,
    document: dict[str, Any] | None = None,
    tally: Tally | None = None,
) -> Tally:
    """Fuzz the gateway at ``base_url`` with its own document (or ``document``);
    ``headers_for(path)``: the headers (the key) to send there; counted into ``tally``."""
    if document is None:
        document = httpx.get(base_url + OPENAPI_PATH, timeout=REQUEST_TIMEOUT_S).json()
    schema = schemathesis.openapi.from_dict(document)
    tally = Tally() if tally is None else tally
    for result in schema.get_all_operations():
        operation = result.ok()
        if not only(operation.path):
            continue
        tally.operations += 1
        for mode, strategy, count in _cases(operation, examples):
            _run(operation, mode, strategy, count, base_url, headers_for, allowed_5xx, before_call, tally)
    return tally


def _check(
    case: Any,
    label: str,
    base_url: str,
    headers_for: Callable[[str], dict[str, str]],
    allowed_5xx: Callable[[str, int], bool],
    tally: Tally,
) -> int:
    headers = headers_for(case.operation.path)
    response = case.call(base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT_S)
    tally.examples += 1
    tally.statuses[response.status_code] += 1
    problems = []
    fault = server_fault(case.operation.path, response.status_code, allowed_5xx)
    if fault is not None:
        problems.append(fault)
    try:
        case.validate_response(response, checks=CHECKS, headers=headers)
    except FailureGroup as group:
        problems.extend(_failure(f) for f in group.exceptions)
    except AssertionError as exc:
        problems.append(_failure(exc))
    if problems:
        body = response.text[:300].replace("\n", " ")
        request = f"{case.method} {case.formatted_path} query={case.query} body={str(case.body)[:200]}"
        tally.violations.append(f"{label}: {request} -> {response.status_code} {body}: {problems}")
    return int(response.status_code)


def _run(
    operation: Any,
    mode: str,
    strategy: Any,
    count: int,
    base_url: str,
    headers_for: Callable[[str], dict[str, str]],
    allowed_5xx: Callable[[str, int], bool],
    before_call: Callable[[Any], None],
    tally: Tally,
) -> None:
    label = f"{operation.method.upper()} {operation.path} ({mode})"

    @given(case=strategy)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def one(case: Any) -> None:
        before_call(case)
        _check(case, label, base_url, headers_for, allowed_5xx, tally)

    try:
        one()
    except Unsatisfiable:
        if mode != "negative":  # nothing to break in a call without parameters, body or key
            tally.violations.append(f"{label}: no case could be generated")
    except Exception as exc:
        tally.violations.append(f"{label}: could not run: {type(exc).__name__}: {_failure(exc)}")
