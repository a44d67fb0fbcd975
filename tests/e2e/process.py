"""A genledger gateway as a process of its own (``python -m genledger serve``), to kill or stop.

The in-thread server of ``tests/gateway.py`` cannot be killed with SIGKILL or sent SIGTERM
without taking the test with it; this one can. Settings are written to a TOML file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import httpx

from tests.services import free_port

START_WITHIN_S = 60.0  # a loaded 2-core machine takes seconds to import and migrate


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else _toml_value(key)


def to_toml(settings: Mapping[str, Any], prefix: str = "") -> str:
    """``settings`` (scalars, lists, nested tables) as a TOML document."""
    lines = []
    tables = []
    for key, value in settings.items():
        if isinstance(value, Mapping) and all(isinstance(v, Mapping) for v in value.values()) and value:
            tables.extend((f"{prefix}{_toml_key(key)}.{_toml_key(k)}", v) for k, v in value.items())
        elif isinstance(value, Mapping):
            tables.append((f"{prefix}{_toml_key(key)}", value))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    text = "\n".join(lines) + "\n"
    for name, table in tables:
        text += f"\n[{name}]\n" + to_toml(table, prefix=f"{name}.")
    return text


class GatewayProcess:
    """``genledger serve`` with ``settings`` on its own port; its output goes to ``log``.

    ``log_level`` is ``--log-level``: at ``info`` the process writes a line per request; ``args``
    are more options of ``serve``; ``env`` more environment variables (``TMPDIR``, say).
    """

    def __init__(
        self,
        settings: Mapping[str, Any],
        folder: Path,
        name: str = "gateway",
        *,
        log_level: str = "warning",
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.log_level = log_level
        self.env = dict(env or {})
        # One process unless asked: `kill -9` of it must be a crash of the gateway, not of a
        # parent whose workers then drain (serve's default is a worker per core on PostgreSQL
        # with Redis limits).
        self.args = list(args) if "--workers" in args else ["--workers", "1", *args]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.url}/api/v1"
        self.config = folder / f"{name}.toml"
        self.config.write_text(to_toml(settings))
        self.log = folder / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GENLEDGER_")} | self.env
        command = [sys.executable, "-m", "genledger", "serve", "--config", str(self.config)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port), "--log-level", self.log_level, *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + START_WITHIN_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the gateway exited with {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"the gateway did not answer within {START_WITHIN_S}s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, nothing of the process's own runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None

    def terminate(self, within: float) -> int:
        """SIGTERM, and the exit status once it has exited (killed if not within ``within`` s)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the gateway did not exit within {within}s after SIGTERM") from None
        finally:
            self.process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        # Gracefully, so that the process writes its coverage data; killed if it hangs.
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(AssertionError):
                self.terminate(within=30)
        self.kill()
