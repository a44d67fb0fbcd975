"""``genledger serve`` becomes the serving process, ``python -m genledger.api``: same pid, the
options it was given, and none of the command line's modules (6 MiB of each process)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from genledger.api.server import main, serving_command
from tests.fakes import unused_port
from tests.services import redis_url

CLI_MODULES = ("typer", "rich", "genledger.cli")  # click is uvicorn's too


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("GENLEDGER_")}


def test_serve_replaces_itself_with_the_serving_process(tmp_path: Path):
    port = unused_port()
    config = tmp_path / "gateway.toml"
    config.write_text(f'database_url = "sqlite:///{tmp_path}/ledger.db"\n')
    server = subprocess.Popen(
        [sys.executable, "-m", "genledger", "serve", "--config", str(config), "--port", str(port)],
        cwd=tmp_path,
        env={**_environment(), "GENLEDGER_LOGGING__FORMAT": "json"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, server.communicate()[0]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.1)
        command = Path(f"/proc/{server.pid}/cmdline").read_bytes().split(b"\0")[:-1]
        assert [part.decode() for part in command] == serving_command(
            config, host=None, port=port, log_level=None, workers=1
        )
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0
    assert "dashboard: " in output  # printed by the command line, before it was replaced


def test_the_serving_process_imports_no_command_line_module(tmp_path: Path):
    # What `python -m genledger.api` imports, and what serving loads after (the app, the ledger).
    url = f"sqlite:///{tmp_path}/ledger.db"
    program = (
        "import asyncio, sys\n"
        "import genledger.api.__main__\n"
        "from genledger.api.app import create_app\n"
        "from genledger.config import load_settings\n"
        "from genledger.ledger import Ledger\n"
        "async def main():\n"
        f"    create_app(load_settings(None, database_url={url!r}))\n"
        f"    ledger = await Ledger.open({url!r})\n"
        "    await ledger.close()\n"
        f"    print(sorted(m for m in sys.modules if m.startswith({CLI_MODULES!r})))\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], env=_environment(), capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_what_was_printed_before_the_process_is_replaced_is_not_lost():
    program = (
        "from genledger.api.server import become\nprint('before', end=' ')\nbecome(['/bin/echo', 'after'])\n"
    )
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    done = subprocess.run(
        [sys.executable, "-c", program], env=buffered, capture_output=True, text=True, timeout=30
    )
    assert done.stdout == "before after\n"


def test_the_command_line_passes_only_the_options_given():
    assert serving_command(None, host=None, port=None, log_level=None, workers=1) == [
        sys.executable, "-m", "genledger.api", "--workers", "1",
    ]  # fmt: skip
    assert serving_command(Path("g.toml"), host="0.0.0.0", port=9, log_level="off", workers=2)[3:] == [
        "--workers", "2", "--config", "g.toml", "--host", "0.0.0.0", "--port", "9", "--log-level", "off",
    ]  # fmt: skip


def test_a_config_that_no_longer_loads_is_one_line_and_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    assert main(["--config", str(tmp_path / "gone.toml")]) == 2
    assert capsys.readouterr().err == f"error: config file not found: {tmp_path / 'gone.toml'}\n"


def test_a_provider_key_that_is_not_set_is_one_line_and_status_2_before_serving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("GENLEDGER_TEST_UNSET_KEY", raising=False)
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'database_url = "sqlite:///{tmp_path}/ledger.db"\n'
        '[providers.demo]\nkind = "demo"\napi_key_env = "GENLEDGER_TEST_UNSET_KEY"\n'
    )
    assert main(["--config", str(config), "--port", str(unused_port())]) == 2
    assert capsys.readouterr().err == (
        "error: providers.demo.api_key_env: the environment variable GENLEDGER_TEST_UNSET_KEY is not set\n"
    )


def _workers_config(folder: Path) -> Path:
    """A config several workers can serve: a SQLite file, rate limits in Redis."""
    config = folder / "workers.toml"
    config.write_text(
        f'database_url = "sqlite:///{folder}/ledger.db"\n[limits]\nbackend = "redis"\n'
        f'redis_url = "{redis_url()}"\n'
    )
    return config


@pytest.mark.parametrize("workers", [1, 2])
def test_a_port_that_is_taken_is_one_line_and_status_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], workers: int
):
    config = _workers_config(tmp_path)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        status = main(["--config", str(config), "--port", str(port), "--workers", str(workers)])
    assert status == 3
    assert capsys.readouterr().err == f"error: cannot listen on 127.0.0.1:{port}: Address already in use\n"


def test_a_host_that_does_not_resolve_is_one_line_and_status_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    config = _workers_config(tmp_path)
    assert main(["--config", str(config), "--host", "nonexistent.invalid", "--workers", "2"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: cannot listen on nonexistent.invalid:8080: ")
    assert err.count("\n") == 1


def test_serve_with_workers_on_a_port_that_is_taken_says_so_in_one_line_and_exits_3(tmp_path: Path):
    config = _workers_config(tmp_path)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        serve = ["serve", "-c", str(config), "--port", str(port), "--workers", "2"]
        done = subprocess.run(
            [sys.executable, "-m", "genledger", *serve],
            cwd=tmp_path,
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 3, done.stderr
    assert done.stderr == f"error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    assert done.stdout.splitlines()[-1] == "workers: 2"  # what it printed before it serves
