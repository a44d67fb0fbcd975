"""The genledger command, as a user runs it in one folder."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from genledger.cli import app
from tests.services import postgres_database

KEY = re.compile(r"sk-gl-v1-[0-9a-f]{64}")


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GENLEDGER_CONFIG", raising=False)
    monkeypatch.delenv("GENLEDGER_DATABASE_URL", raising=False)
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner(env={"COLUMNS": "250"}).invoke(app, list(args))
    return result.exit_code, result.output


def test_keys_create_list_disable(folder: Path):
    code, out = run("keys", "create", "--name", "ci", "--limit", "2.5")
    assert code == 0 and KEY.search(out)
    assert (folder / "genledger.db").exists()
    code, out = run("keys", "list")
    assert code == 0 and "ci" in out and "2.5" in out
    assert KEY.search(out) is None, "a secret must never be listed"
    code, out = run("keys", "create", "--name", "ci")
    assert code == 1
    assert "error: a key named 'ci' exists already" in out
    # The ledger opened fine: a taken name must not be reported as a failure to open it.
    assert "cannot open the ledger" not in out
    assert KEY.search(out) is None
    code, out = run("keys", "disable", "ci")
    assert code == 0
    code, out = run("keys", "disable", "nobody")
    assert code == 1 and "no key" in out


@pytest.mark.parametrize("name", ["", "   ", "k" * 201])
def test_keys_create_refuses_a_name_the_api_would(folder: Path, name: str):
    code, out = run("keys", "create", "--name", name)
    assert code == 2 and "--name" in out and "at most 200 characters" in out, out
    assert KEY.search(out) is None
    code, out = run("keys", "create", "--name", "  padded  ")
    assert code == 0 and KEY.search(out)
    code, out = run("keys", "list")
    assert "padded" in out and "  padded  " not in out  # stripped, as the API does


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://user:secret@somewhere/ledger", "unsupported database 'mysql'"),
        ("mysql+aiomysql://somewhere/ledger", "unsupported database 'mysql+aiomysql'"),
        ("genledger.db", "not a database URL"),
    ],
)
def test_a_database_genledger_cannot_use_is_a_config_error(
    folder: Path, monkeypatch: pytest.MonkeyPatch, url: str, says: str
):
    monkeypatch.setenv("GENLEDGER_DATABASE_URL", url)
    code, out = run("keys", "create", "--name", "ci")
    assert code == 2, out
    assert (
        f"GENLEDGER_DATABASE_URL (the environment): database_url: {says}: "
        "use sqlite:///FILE or postgresql://USER@HOST/DATABASE" in out
    )
    assert "secret" not in out and not (folder / "genledger.db").exists()


def test_a_database_file_that_cannot_be_created_is_one_line_not_a_traceback(
    folder: Path, monkeypatch: pytest.MonkeyPatch
):
    url = f"sqlite:///{folder}/no-such-folder/ledger.db"
    monkeypatch.setenv("GENLEDGER_DATABASE_URL", url)
    code, out = run("keys", "list")
    assert code == 1
    assert f"error: cannot open the ledger at {url}: " in out and "unable to open database file" in out
    assert "Traceback" not in out and "sqlalche.me" not in out


@pytest.mark.parametrize("limit", ["-1", "abc", "0.0000000000001"])
def test_bad_limits_are_refused(folder: Path, limit: str):
    code, out = run("keys", "create", "--name", "x", "--limit", limit)
    assert code == 2 and "--limit" in out


def test_a_bad_config_names_the_key(folder: Path):
    (folder / "bad.toml").write_text(
        '[models."a/b"]\nprovider = "demo"\nprompt_price = "x"\ncompletion_price = "1"\n'
    )
    code, out = run("keys", "list", "--config", "bad.toml")
    assert code == 2 and "models.a/b.prompt_price" in out


@pytest.mark.parametrize(
    ("setup", "env", "says"),
    [
        (lambda folder: (folder / "bad.toml").mkdir(), {}, "cannot read the config file bad.toml"),
        (lambda folder: (folder / "bad.toml").write_bytes(b"port = \xff\n"), {}, "bad.toml: not UTF-8"),
        (lambda folder: None, {"GENLEDGER_LIMITS": "abc"}, 'error parsing value for field "limits"'),
        (lambda folder: None, {"GENLEDGER_DATABASE_URL": "sqlite:///:memory:"}, "in-memory SQLite ledger"),
        (
            lambda folder: None,
            {"GENLEDGER_LIMITS__REDIS_URL": "garbage"},
            "limits.redis_url: must be a redis://",
        ),
    ],
    ids=["a-folder", "not-utf8", "env-not-json", "in-memory-ledger", "redis-url"],
)
def test_a_config_that_cannot_be_used_is_one_line_and_exit_2(
    folder: Path, monkeypatch: pytest.MonkeyPatch, setup, env: dict[str, str], says: str
):
    setup(folder)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = ["--config", "bad.toml"] if (folder / "bad.toml").exists() else []
    for command in (["keys", "list"], ["serve", "--port", str(free_port())]):
        code, out = run(*command, *config)
        assert code == 2 and "error:" in out and says in out, out
        assert "Traceback" not in out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_demo_prints_a_key_that_works_and_generations_get_reads_the_record(folder: Path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENLEDGER_")}
    env["GENLEDGER_PORT"] = str(free_port())  # --port wins over the environment
    server = subprocess.Popen(
        [sys.executable, "-m", "genledger", "serve", "--demo", "--port", str(port), "--log-level", "warning"],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        secret = None
        deadline = time.monotonic() + 20
        output = ""
        while secret is None and time.monotonic() < deadline:
            line = server.stdout.readline()
            output += line
            match = KEY.search(line)
            secret = match.group(0) if match else None
        assert secret, output
        for _ in range(200):
            try:
                httpx.get(f"http://127.0.0.1:{port}/health")
                break
            except httpx.ConnectError:
                time.sleep(0.05)
        response = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/chat/completions",
            json={"model": "genledger/demo", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert response.status_code == 200, response.text
        generation_id = response.json()["id"]
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=15)
    # The CLI in the same folder reads the same default SQLite file.
    code, out = run("generations", "get", generation_id)
    assert code == 0 and generation_id in out and "genledger/demo" in out
    code, out = run("keys", "list")
    assert "demo" in out
    code, out = run("generations", "get", "gen-missing")
    assert code == 1


def test_keys_show_limits_and_usage_by_day(folder: Path):
    code, out = run(
        "keys", "create", "--name", "team", "--limit", "3", "--limit-reset", "weekly", "--rpm", "60"
    )
    assert code == 0
    secret = KEY.search(out).group(0)
    from datetime import UTC, datetime

    from genledger.core.generation import Generation
    from genledger.core.ids import hash_key, new_generation_id
    from tests.gateway import run_with_ledger

    async def spend(ledger):
        key = await ledger.keys.find_by_hash(hash_key(secret))
        for usage in (1_500_000_000, 2_500_000_000):  # $0.0015 and $0.0025
            await ledger.generations.record(
                Generation(
                    id=new_generation_id(),
                    key_id=key.id,
                    created_at=datetime.now(UTC),
                    model="m",
                    charge_pico=usage,
                    total_cost_pico=usage,
                )
            )

    run_with_ledger(f"sqlite:///{folder}/genledger.db", spend)
    code, out = run("keys", "list")
    assert code == 0 and "weekly" in out and "0.004" in out and "60" in out
    code, out = run("keys", "usage", "team")
    assert code == 0
    assert datetime.now(UTC).date().isoformat() in out and "0.004" in out
    code, out = run("keys", "usage", "nobody")
    assert code == 1
    # Further back than a date goes: a usage error naming the option, not a traceback.
    code, out = run("keys", "usage", "team", "--days", "99999999")
    assert code == 2 and "--days" in out and "Traceback" not in out


# A table of the ledger's name and another shape: the ledger's migrations cannot run.
CONFLICTING = "CREATE TABLE generations (id INTEGER PRIMARY KEY, note VARCHAR(20))"


@pytest.fixture(params=["sqlite", "postgres"])
def unmigratable(request: pytest.FixtureRequest, folder: Path) -> Iterator[str]:
    """The URL of a database with a table in the ledger's way (SQLite: the folder's default file)."""
    if request.param == "sqlite":
        with sqlite3.connect(folder / "genledger.db") as connection:
            connection.execute(CONFLICTING)
        yield "sqlite:///genledger.db"
        return
    import asyncpg

    async def conflict(url: str) -> None:
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(CONFLICTING)
        finally:
            await connection.close()

    with postgres_database() as url:
        asyncio.run(conflict(url))
        yield url


def assert_one_line_naming(output: str, database_url: str) -> None:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith(f"error: cannot open the ledger at {database_url}: "), output
    assert "generations" in lines[0] and "Traceback" not in output


def test_a_ledger_that_cannot_be_migrated_is_one_line_naming_the_database(
    unmigratable: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("GENLEDGER_DATABASE_URL", unmigratable)
    code, out = run("keys", "list")
    assert code == 1
    assert_one_line_naming(out, unmigratable)


def test_serve_refuses_a_database_it_cannot_migrate_in_one_line(folder: Path, unmigratable: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENLEDGER_")}
    env["GENLEDGER_DATABASE_URL"] = unmigratable
    env["COLUMNS"] = "80"  # a narrow terminal must not wrap the line either
    result = subprocess.run(
        [sys.executable, "-m", "genledger", "serve", "--port", str(free_port())],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert_one_line_naming(result.stderr, unmigratable)


def test_text_callers_chose_is_printed_as_it_is_never_read_as_markup(folder: Path):
    """Key names and request fields are anybody's text: "[/x]" once crashed Rich's markup
    parser (a traceback), and "[red]z[/red]" printed as "z"."""
    from datetime import UTC, datetime

    from genledger.core.generation import Generation
    from tests.gateway import seed_generations

    for name in ("[/x]", "[red]z[/red]"):
        code, out = run("keys", "create", "--name", name)
        assert code == 0, out
    seed_generations(
        f"sqlite:///{folder}/genledger.db",
        "[/x]",
        lambda key_id, i: Generation(
            id=f"gen-markup-{i}",
            key_id=key_id,
            created_at=datetime.now(UTC),
            model="acme/[bold]m[/bold]",
            external_user="[/evil]",
            app_title="[link=http://x]t[/link]",
        ),
        1,
    )
    code, out = run("keys", "list")
    assert code == 0 and "[/x]" in out and "[red]z[/red]" in out, out
    code, out = run("keys", "usage", "[/x]")
    assert code == 0 and "[/x]" in out, out
    code, out = run("generations", "list")
    assert code == 0 and "acme/[bold]m[/bold]" in out, out
    code, out = run("generations", "get", "gen-markup-0")
    assert code == 0 and "[/evil]" in out and "acme/[bold]m[/bold]" in out, out
    code, out = run("generations", "get", "[/nope]")
    assert code == 1 and "error: no generation '[/nope]'" in out, out
    code, out = run("keys", "disable", "[/x]")
    assert code == 0 and "disabled [/x]" in out, out
    code, out = run("keys", "disable", "[/y]")
    assert code == 1 and "error: no key named '[/y]'" in out, out


def fields_of(out: str) -> dict[str, str]:
    """``generations get``'s table as {field: value}."""
    rows = (re.fullmatch(r"│ (\S+)\s+│ (.*?)\s*│", line.strip()) for line in out.splitlines())
    return {row[1]: row[2] for row in rows if row is not None}


def test_generations_get_prints_money_as_decimals_and_other_values_as_json(folder: Path):
    """Not Python's spelling of them: 6.4e-05, False, [{'status': 200, ...}]."""
    from datetime import UTC, datetime

    from genledger.core.generation import Generation, ProviderAttempt
    from tests.gateway import create_key, seed_generations

    url = f"sqlite:///{folder}/genledger.db"
    create_key(url, "ci")
    seed_generations(
        url,
        "ci",
        lambda key_id, i: Generation(
            id="gen-formats",
            key_id=key_id,
            created_at=datetime(2026, 5, 1, 12, tzinfo=UTC),
            model="acme/m",
            total_cost_pico=64_000_000,
            charge_pico=64_000_000,
            upstream_cost_pico=12_000_000_000_000,
            streamed=False,
            cancelled=True,
            latency_ms=5.25,
            tokens_prompt=3,
            provider_responses=(ProviderAttempt(200, "FakeAI", 9.5, "up-1"),),
            metadata={"k": "v"},
        ),
        1,
    )
    code, out = run("generations", "get", "gen-formats")
    assert code == 0, out
    fields = fields_of(out)
    assert fields["total_cost"] == fields["usage"] == "0.000064", out
    assert fields["upstream_inference_cost"] == "12"
    assert fields["cache_discount"] == fields["finish_reason"] == "null"
    assert (fields["streamed"], fields["cancelled"], fields["is_byok"]) == ("false", "true", "false")
    assert (fields["latency"], fields["tokens_prompt"]) == ("5.25", "3")
    assert fields["model"] == "acme/m" and fields["created_at"] == "2026-05-01T12:00:00+00:00"
    assert fields["metadata"] == '{"k":"v"}'
    assert fields["provider_responses"] == (
        '[{"status":200,"provider_name":"FakeAI","latency":9.5,"id":"up-1","is_byok":false}]'
    )


def test_an_unknown_genledger_variable_is_a_warning_naming_the_closest_and_the_command_runs(
    folder: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("GENLEDGER_DATABSE_URL", f"sqlite:///{folder}/elsewhere.db")
    monkeypatch.setenv("GENLEDGER_NOTHING_LIKE_IT", "1")
    monkeypatch.setenv("GENLEDGER_REQUIRE_SERVICES", "1")  # the project's own: no warning
    result = CliRunner(env={"COLUMNS": "80"}).invoke(app, ["keys", "list"])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "warning: GENLEDGER_DATABSE_URL is not a genledger setting: ignored "
        "(did you mean GENLEDGER_DATABASE_URL?)",
        "warning: GENLEDGER_NOTHING_LIKE_IT is not a genledger setting: ignored",
    ]
    assert "warning" not in result.stdout
    assert (folder / "genledger.db").exists() and not (folder / "elsewhere.db").exists()


KEYED_PROVIDER = """
[providers.upstream]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "GENLEDGER_TEST_UNSET_KEY"

[models."acme/m"]
provider = "upstream"
prompt_price = "1"
completion_price = "1"
"""


def test_only_the_commands_that_call_providers_need_their_keys(folder: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("GENLEDGER_TEST_UNSET_KEY", raising=False)
    (folder / "keyed.toml").write_text(KEYED_PROVIDER)
    config = ["--config", "keyed.toml"]
    code, out = run("keys", "create", "--name", "ci", *config)
    assert code == 0 and KEY.search(out), out
    code, out = run("keys", "list", *config)
    assert code == 0 and "ci" in out, out
    code, out = run("generations", "get", "gen-missing", *config)
    assert code == 1 and "error: no generation 'gen-missing'" in out, out
    says = (
        "error: providers.upstream.api_key_env: the environment variable GENLEDGER_TEST_UNSET_KEY is not set"
    )
    for command in (
        ["serve", "--port", str(free_port())],
        ["reconcile", "--provider", "upstream", "--since", "2026-01-01"],
    ):
        code, out = run(*command, *config)
        assert code == 2 and out.strip() == says, out


def test_help_texts_lose_nothing_to_rich_markup():
    """Typer reads help as Rich markup, where "[default: 127.0.0.1]" was a tag, dropped: the
    help said "Interface to listen on ." (and "pip install 'genledger'" for genledger[export])."""
    import typer.main
    from rich.text import Text

    def helps(command, path: tuple[str, ...] = ()):
        yield path, command.help or ""
        for param in command.params:
            yield (*path, param.name), getattr(param, "help", None) or ""
        for name, sub in getattr(command, "commands", {}).items():
            yield from helps(sub, (*path, name))

    texts = list(helps(typer.main.get_command(app)))
    assert len(texts) > 50
    for where, text in texts:
        assert Text.from_markup(text).plain == text.replace("\\[", "["), where
    code, out = run("serve", "--help")
    assert code == 0 and "Interface to listen on. [default: 127.0.0.1]" in out and " ." not in out, out
    code, out = run("keys", "expire", "--help")
    assert code == 0 and "(ISO 8601; no zone: UTC). [default: now]" in out, out
