"""Fake upstream LLM servers (real aiohttp servers on 127.0.0.1) for e2e tests, fault tests and benchmarks.

::

    from tests.fakes import run_fake_openai, FakeAnthropicInThread

    async with run_fake_openai() as fake:          # on the running loop
        fake.set_behavior("status", status=529, times=1)
        ...  # point the gateway at fake.base_url
        assert fake.stats()["requests"] == 2

    with FakeAnthropicInThread() as fake:          # own loop, daemon thread
        ...

See ``tests/fakes/README.md`` for behaviours, the header syntax and the control API.
Names are imported lazily so ``python -m tests.fakes.openai_upstream`` runs without a double import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.anthropic_upstream import (
        FakeAnthropicInThread,
        FakeAnthropicUpstream,
        run_fake_anthropic,
    )
    from tests.fakes.control import Behavior, BehaviorError, ControlState, parse_spec
    from tests.fakes.openai_upstream import FakeOpenAIInThread, FakeOpenAIUpstream, run_fake_openai
    from tests.fakes.runner import FakeServer, FakeServerInThread, serve, unused_port
    from tests.fakes.server import BEHAVIOR_HEADER, FakeUpstream

_EXPORTS = {
    "FakeAnthropicInThread": "anthropic_upstream",
    "FakeAnthropicUpstream": "anthropic_upstream",
    "run_fake_anthropic": "anthropic_upstream",
    "FakeOpenAIInThread": "openai_upstream",
    "FakeOpenAIUpstream": "openai_upstream",
    "run_fake_openai": "openai_upstream",
    "Behavior": "control",
    "BehaviorError": "control",
    "ControlState": "control",
    "parse_spec": "control",
    "FakeServer": "runner",
    "FakeServerInThread": "runner",
    "serve": "runner",
    "unused_port": "runner",
    "BEHAVIOR_HEADER": "server",
    "FakeUpstream": "server",
}

__all__ = [
    "BEHAVIOR_HEADER",
    "Behavior",
    "BehaviorError",
    "ControlState",
    "FakeAnthropicInThread",
    "FakeAnthropicUpstream",
    "FakeOpenAIInThread",
    "FakeOpenAIUpstream",
    "FakeServer",
    "FakeServerInThread",
    "FakeUpstream",
    "parse_spec",
    "run_fake_anthropic",
    "run_fake_openai",
    "serve",
    "unused_port",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
