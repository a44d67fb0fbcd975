"""Fixtures for the client tests: every test runs against ``httpx.MockTransport``, no sockets."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
if importlib.util.find_spec("genledger") is None:  # not installed: test the source tree
    sys.path.insert(0, str(SRC))

from client_kit import Harness, sample_generation  # noqa: E402


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests control GENLEDGER_* themselves; a developer's shell must not leak in."""
    monkeypatch.delenv("GENLEDGER_API_KEY", raising=False)
    monkeypatch.delenv("GENLEDGER_BASE_URL", raising=False)


@pytest.fixture(params=["sync", "async"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """A :class:`Harness` for ``Client`` and then for ``AsyncClient``."""
    kit = Harness(request.param)
    yield kit
    await kit.aclose()


@pytest.fixture
def generation_data() -> dict[str, Any]:
    """A fresh ``data`` object with every key of the contract."""
    return sample_generation()
