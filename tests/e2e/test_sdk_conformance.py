"""The official ``openrouter`` SDK, operation by operation, against a live gateway.

Every operation in :data:`tests.e2e.sdk_operations.OPERATIONS` is called with the SDK's own strict
response validation and no retries: a served one must parse, any other must raise the SDK's typed
error for a JSON-envelope 404 (never a validation error, an HTML page or a 500). The counts are
printed at the end of the run (``tests/conftest.py``).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from openrouter import OpenRouter, errors
from openrouter.basesdk import BaseSDK
from openrouter.utils import BackoffStrategy, RetryConfig

from tests.e2e.conftest import MODEL, gateway_settings
from tests.e2e.sdk_operations import (
    EMBEDDING_MODEL,
    OPERATIONS,
    RESULTS,
    Context,
    Observed,
    Operation,
    Outcome,
)
from tests.fakes import FakeOpenAIInThread
from tests.gateway import GatewayServer, create_key, run_with_ledger

NO_RETRIES = RetryConfig("none", BackoffStrategy(1, 1, 1, 1), False)


def sdk_operations(sdk: BaseSDK, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every public synchronous operation reachable from ``sdk``, as ("group.method", bound method)."""
    for name in getattr(type(sdk), "__annotations__", {}):
        child = getattr(sdk, name)
        if isinstance(child, BaseSDK):
            yield from sdk_operations(child, f"{prefix}{name}.")
    for name, function in vars(type(sdk)).items():
        public = not name.startswith("_") and not name.endswith("_async") and name != "dynamic_import"
        if inspect.isfunction(function) and public:
            yield f"{prefix}{name}", getattr(sdk, name)


def resolve(sdk: OpenRouter, name: str) -> Any:
    target: Any = sdk
    for part in name.split("."):
        target = getattr(target, part)
    return target


def test_the_table_names_every_sdk_operation():
    """A new SDK release with a new operation fails here until the table (and README) list it."""
    sdk = OpenRouter(api_key="unused", server_url="http://127.0.0.1:9/api/v1")
    in_sdk = {name for name, _ in sdk_operations(sdk)}
    in_table = [operation.name for operation in OPERATIONS]
    assert len(in_table) == len(set(in_table)), "an operation is listed twice"
    assert in_sdk - set(in_table) == set(), "SDK operations missing from the table"
    assert set(in_table) - in_sdk == set(), "table entries the SDK no longer has"


@pytest.fixture(scope="module")
def admin(database_url: str) -> str:
    return create_key(database_url, "conformance-admin", management=True)


@pytest.fixture(scope="module")
def user(database_url: str) -> str:
    return create_key(database_url, "conformance-user", limit_pico=5 * 10**12)


@pytest.fixture(scope="module")
def conformance_gateway(database_url: str, upstream: FakeOpenAIInThread) -> Iterator[GatewayServer]:
    settings = gateway_settings(database_url, upstream.api_url, content_storage={"enabled": True})
    embedding = {"kind": "embeddings", "prompt_price": "0.02", "completion_price": "0"}
    settings["models"][EMBEDDING_MODEL] = {"provider": "fake", "upstream_model": "text-embed", **embedding}
    with GatewayServer.build(**settings) as server:
        yield server


def sdk_for(gateway: GatewayServer, key: str) -> OpenRouter:
    return OpenRouter(api_key=key, server_url=gateway.base_url, retry_config=NO_RETRIES)


def call(operation: Operation, sdks: dict[bool, OpenRouter], context: Context) -> Observed:
    sdk = sdks[operation.management]
    method = resolve(sdk, operation.name)
    try:
        # Some operations carry their own server (e.g. the alpha API): every one is sent here.
        result = method(**operation.arguments(context), server_url=sdk.sdk_configuration.server_url)
    except errors.ResponseValidationError as exc:
        return Observed(operation, parsed=False, error=f"ResponseValidationError: {exc.cause}")
    except errors.OpenRouterError as exc:
        return Observed(
            operation, parsed=False, error=type(exc).__name__, status=exc.status_code, body=exc.body
        )
    except Exception as exc:
        return Observed(operation, parsed=False, error=f"{type(exc).__name__}: {exc}")
    return Observed(operation, parsed=result is not None)


def declared_404_error(sdk: OpenRouter, name: str) -> str:
    """The error class the SDK's generated code raises for a 404 of this operation."""
    source = inspect.getsource(resolve(sdk, name))
    declared = re.search(
        r'match_response\(\s*http_res,\s*(?:"404"|\[[^\]]*"404"[^\]]*\]).*?raise errors\.(\w+)\(',
        source,
        re.S,
    )
    return declared.group(1) if declared else "OpenRouterDefaultError"


def problem(observed: Observed, sdk: OpenRouter) -> str | None:
    """Why an observation does not meet its operation's expected outcome, or None."""
    operation = observed.operation
    if operation.outcome is Outcome.SERVED:
        return None if observed.parsed else f"expected to parse, got {observed.error} ({observed.status})"
    if observed.parsed or observed.status != 404:
        return f"expected a typed 404, got {observed.error or 'a parsed answer'} ({observed.status})"
    expected = declared_404_error(sdk, operation.name)
    if observed.error != expected:
        return f"expected {expected}, got {observed.error}"
    envelope = orjson.loads(observed.body or b"null")
    if not (isinstance(envelope, dict) and envelope.get("error", {}).get("code") == 404):
        return f"the 404 is not the JSON envelope: {observed.body!r}"
    return None


def test_every_operation_parses_or_fails_with_a_typed_error(
    conformance_gateway: GatewayServer, admin: str, user: str, database_url: str, pytestconfig: pytest.Config
):
    sdk = sdk_for(conformance_gateway, user)
    sdks = {False: sdk, True: sdk_for(conformance_gateway, admin)}
    made = sdk.chat.send(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    target = create_key(database_url, "conformance-target")
    target_hash = run_with_ledger(
        database_url, lambda ledger: ledger.keys.find_by_name("conformance-target")
    ).hash
    assert target
    context = Context(model=MODEL, generation_id=made.id, key_hash=target_hash, bearer=user)

    observed = [call(operation, sdks, context) for operation in OPERATIONS]

    counts = pytestconfig.stash.setdefault(RESULTS, {})
    counts[database_url.split(":", 1)[0]] = observed
    problems = [f"{o.operation.name}: {why}" for o in observed if (why := problem(o, sdk)) is not None]
    assert problems == [], "\n".join(problems)


def test_the_readme_table_says_what_the_table_expects():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    rows = dict(re.findall(r"^\| `([\w.]+)` \| ([^|]+?) \|", readme, re.M))
    assert set(rows) == {operation.name for operation in OPERATIONS}
    for operation in OPERATIONS:
        # "served" and "served with a note" both mean SERVED
        assert rows[operation.name].startswith(operation.outcome.value), operation.name
