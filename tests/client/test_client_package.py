"""The package surface: pinned ``__all__``, docstrings, version, and no server imports."""

from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
from pathlib import Path

import genledger.client
from genledger.client import errors

SRC = Path(__file__).resolve().parents[2] / "src"

CLIENT_ALL = {
    "NOT_GIVEN",
    "RETRYABLE_STATUS_CODES",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "ActivityItem",
    "AsyncClient",
    "AsyncPage",
    "AsyncPaginator",
    "BadGatewayResponseError",
    "BadRequestResponseError",
    "Client",
    "Credits",
    "EdgeNetworkTimeoutResponseError",
    "ErrorDetail",
    "ForbiddenResponseError",
    "Generation",
    "GenledgerError",
    "InternalServerResponseError",
    "KeyInfo",
    "MissingAPIKeyError",
    "NotFoundResponseError",
    "NotGiven",
    "PaymentRequiredResponseError",
    "ProviderOverloadedResponseError",
    "ProviderResponse",
    "RateLimit",
    "ResponseValidationError",
    "RetryPolicy",
    "SyncPage",
    "TooManyRequestsResponseError",
    "UnauthorizedResponseError",
    "__version__",
}

ERRORS_ALL = {
    "STATUS_ERRORS",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "BadGatewayResponseError",
    "BadRequestResponseError",
    "EdgeNetworkTimeoutResponseError",
    "ForbiddenResponseError",
    "GenledgerError",
    "InternalServerResponseError",
    "MissingAPIKeyError",
    "NotFoundResponseError",
    "PaymentRequiredResponseError",
    "ProviderOverloadedResponseError",
    "ResponseValidationError",
    "TooManyRequestsResponseError",
    "UnauthorizedResponseError",
}


def test_client_all_is_pinned() -> None:
    assert set(genledger.client.__all__) == CLIENT_ALL
    assert len(genledger.client.__all__) == len(CLIENT_ALL)
    for name in CLIENT_ALL:
        assert hasattr(genledger.client, name), name


def test_errors_all_is_pinned() -> None:
    assert set(errors.__all__) == ERRORS_ALL
    assert len(errors.__all__) == len(ERRORS_ALL)


def test_every_error_class_is_also_exported_from_the_package() -> None:
    for name in ERRORS_ALL - {"STATUS_ERRORS"}:
        assert getattr(genledger.client, name) is getattr(errors, name)


def test_everything_public_has_a_docstring() -> None:
    client = genledger.client.Client(api_key="sk")
    async_client = genledger.client.AsyncClient(api_key="sk")
    objects = [
        getattr(genledger.client, name)
        for name in CLIENT_ALL
        if isinstance(getattr(genledger.client, name), type)
    ]
    objects += [
        type(resource) for resource in (client.generations, client.key, client.credits, client.activity)
    ]
    objects += [
        type(resource)
        for resource in (
            async_client.generations,
            async_client.key,
            async_client.credits,
            async_client.activity,
        )
    ]
    missing = []
    for obj in objects:
        if not inspect.getdoc(obj):
            missing.append(obj.__qualname__)
        for attr, member in vars(obj).items():
            if attr.startswith("_") or not (inspect.isfunction(member) or isinstance(member, property)):
                continue
            if not inspect.getdoc(member):
                missing.append(f"{obj.__qualname__}.{attr}")
    client.close()
    assert not missing, missing
    assert genledger.client.__doc__ and errors.__doc__


def test_user_agent_names_the_client_and_its_version() -> None:
    from genledger.client._base import USER_AGENT

    assert f"genledger-python/{genledger.client.__version__}" == USER_AGENT
    assert genledger.client.__version__


def test_the_client_imports_without_server_dependencies() -> None:
    code = (
        "import sys; import genledger.client; "
        "bad={'starlette','sqlalchemy','aiohttp','uvicorn','orjson','redis','typer'} & set(sys.modules); "
        "assert not bad, bad; "
        "other=[m for m in sys.modules "
        "if m.startswith('genledger.') and not m.startswith('genledger.client')]; "
        "assert not other, other"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
    }
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_client_modules_import_only_httpx_pydantic_and_the_stdlib() -> None:
    package_dir = Path(genledger.client.__file__).parent
    allowed = {"httpx", "pydantic", "__future__"} | set(sys.stdlib_module_names)
    offenders = []
    for path in sorted(package_dir.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            offenders += [f"{path.name}: {m}" for m in modules if m.split(".")[0] not in allowed]
    assert not offenders, offenders
