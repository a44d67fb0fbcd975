"""LiteLLM's proxy as an anchor (``gateway_overhead.py --anchors``): what users run today.

The bench installs it into its own venv (``pip install 'litellm[proxy]'`` from PyPI, once;
``--litellm-venv``, default ``/tmp/litellm-venv``), never into genledger's, and runs it with
its offline price map (``LITELLM_LOCAL_MODEL_COST_MAP=True``: no download at start), one
worker, no database, a master key, and one model routed to the same fake upstream as every
other target. Nothing of it is counted in a ledger check (it has no ledger here).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Final

from harness import BenchError, Child, Children, free_port, wait_healthy

LITELLM_KEY: Final = "sk-litellm-bench-1234"
LITELLM_MODEL: Final = "bench/model"
INSTALL_TIMEOUT_S: Final = 1200.0
START_TIMEOUT_S: Final = 180.0  # it imports a great deal


def ensure_installed(venv: Path) -> Path:
    """The ``litellm`` executable in ``venv``, installing it there first if it is missing."""
    executable = venv / "bin" / "litellm"
    if executable.exists():
        return executable
    print(f"installing litellm[proxy] into {venv} (once) ...", file=sys.stderr, flush=True)
    try:
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", "litellm[proxy]"],
            check=True,
            timeout=INSTALL_TIMEOUT_S,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise BenchError(f"could not install litellm[proxy] into {venv}: {exc}") from exc
    if not executable.exists():
        raise BenchError(f"pip installed no litellm executable in {venv}")
    return executable


def write_config(workdir: Path, upstream_base: str) -> Path:
    """One model, ``bench/model``, served by the fake upstream's ``fast`` as an OpenAI endpoint."""
    config = workdir / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {LITELLM_MODEL}\n"
        "    litellm_params:\n"
        "      model: openai/fast\n"
        f"      api_base: {upstream_base}\n"
        "      api_key: sk-fake\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "  drop_params: true\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_KEY}\n"
    )
    return config


def start(children: Children, workdir: Path, upstream_base: str, venv: Path) -> tuple[Child, str]:
    """LiteLLM's proxy on a free port, once it is live; its chat completions URL."""
    executable = ensure_installed(venv)
    config = write_config(workdir, upstream_base)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_SCHEMA_UPDATE": "True",
    }
    argv = [
        str(executable), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
        "--num_workers", "1",
    ]  # fmt: skip
    child = children.spawn("litellm", argv, workdir, workdir / "litellm.log", env=env)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(child, url + "/health/liveliness", timeout=START_TIMEOUT_S)
    return child, url + "/v1/chat/completions"
