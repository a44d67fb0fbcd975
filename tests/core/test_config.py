import re
import typing
from collections.abc import Iterator
from decimal import Decimal

import pytest
from pydantic import BaseModel

from genledger.config import (
    DEMO_EMBEDDING_MODEL,
    DEMO_MODEL,
    ConfigError,
    ProviderConfig,
    Settings,
    UnknownVariable,
    load_settings,
    unknown_variables,
)


def write(tmp_path, text):
    path = tmp_path / "genledger.toml"
    path.write_text(text)
    return path


GOOD = """
database_url = "sqlite:///ledger.db"

[providers.local]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "LOCAL_KEY"
timeout = 5

[models."acme/fast-chat"]
provider = "local"
upstream_model = "llama-3"
prompt_price = "0.15"
completion_price = "0.60"
"""


@pytest.fixture(autouse=True)
def _local_key(monkeypatch):
    monkeypatch.setenv("LOCAL_KEY", "sk-local")


def test_defaults_run_the_demo_on_a_sqlite_file(monkeypatch):
    monkeypatch.delenv("GENLEDGER_CONFIG", raising=False)
    monkeypatch.delenv("GENLEDGER_DATABASE_URL", raising=False)
    settings = load_settings()
    assert settings.database_url == "sqlite:///genledger.db"
    assert list(settings.models) == [DEMO_MODEL, DEMO_EMBEDDING_MODEL]
    assert settings.providers["demo"].kind == "demo"


def test_a_file_is_read_and_the_environment_overrides_it(tmp_path, monkeypatch):
    path = write(tmp_path, GOOD)
    monkeypatch.setenv("GENLEDGER_DATABASE_URL", "postgresql://u@127.0.0.1/db")
    settings = load_settings(path)
    assert settings.database_url == "postgresql://u@127.0.0.1/db"
    model = settings.models["acme/fast-chat"]
    assert model.prompt_price == Decimal("0.15")
    assert model.price.completion == Decimal("0.60")
    assert settings.providers["local"].timeout == 5


def test_config_path_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLEDGER_CONFIG", str(write(tmp_path, GOOD)))
    monkeypatch.delenv("GENLEDGER_DATABASE_URL", raising=False)
    assert load_settings().database_url == "sqlite:///ledger.db"


@pytest.mark.parametrize(
    ("patch", "named"),
    [
        (('prompt_price = "0.15"', 'prompt_price = "abc"'), "models.acme/fast-chat.prompt_price"),
        (
            ('prompt_price = "0.15"', 'prompt_price = "0.0000001"'),
            "models.acme/fast-chat.prompt_price: price 0.0000001 has more than 6 decimals",  # README's
        ),
        (
            ('prompt_price = "0.15"', 'prompt_price = "1E-7"'),
            "models.acme/fast-chat.prompt_price: price 0.0000001 has more than 6 decimals",
        ),
        (('provider = "local"', 'provider = "nowhere"'), "models.acme/fast-chat.provider"),
        (('kind = "openai"', 'kind = "grpc"'), "providers.local.kind"),
        (("timeout = 5", "timeout = -1"), "providers.local.timeout"),
        (('database_url = "sqlite:///ledger.db"', 'databse_url = "x"'), "databse_url"),
        (('base_url = "http://127.0.0.1:9/v1"', ""), "base_url"),
    ],
)
def test_invalid_config_names_the_bad_key(tmp_path, monkeypatch, patch, named):
    monkeypatch.delenv("GENLEDGER_DATABASE_URL", raising=False)
    path = write(tmp_path, GOOD.replace(*patch))
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert named in str(caught.value)


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "this is = = not toml"))


def test_the_example_config_is_valid(monkeypatch):
    from pathlib import Path

    monkeypatch.delenv("GENLEDGER_DATABASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant")
    example = Path(__file__).parents[2] / "examples" / "genledger.toml"
    settings = load_settings(example)
    assert settings.models


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_provider_key_is_read_once_from_the_variable_named(tmp_path, monkeypatch, kind):
    path = write(tmp_path, GOOD.replace('kind = "openai"', f'kind = "{kind}"'))
    settings = load_settings(path)
    provider = settings.providers["local"]
    assert provider.api_key is not None and provider.api_key.get_secret_value() == "sk-local"
    assert "sk-local" not in repr(settings) and "sk-local" not in str(settings.model_dump())
    monkeypatch.setenv("LOCAL_KEY", "sk-changed")
    assert provider.api_key.get_secret_value() == "sk-local"


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_a_key_variable_that_is_not_set_is_named_where_the_provider_is_needed(
    tmp_path, monkeypatch, kind, value
):
    """Not when the settings are read: the commands that only read the ledger call no provider."""
    from genledger.providers import build_provider

    if value is None:
        monkeypatch.delenv("LOCAL_KEY")
    else:
        monkeypatch.setenv("LOCAL_KEY", value)
    path = write(tmp_path, GOOD.replace('kind = "openai"', f'kind = "{kind}"'))
    settings = load_settings(path)
    assert settings.providers["local"].api_key is None
    says = "providers.local.api_key_env: the environment variable LOCAL_KEY is not set"
    with pytest.raises(ConfigError) as caught:
        settings.check_provider_keys()
    assert str(caught.value) == says
    with pytest.raises(ConfigError) as caught:
        build_provider("local", settings.providers["local"])
    assert str(caught.value) == says
    build_provider("keyless", ProviderConfig(kind="demo"))  # one that needs no key is built


def test_a_provider_without_api_key_env_has_no_key(tmp_path):
    settings = load_settings(write(tmp_path, GOOD.replace('api_key_env = "LOCAL_KEY"', "")))
    assert settings.providers["local"].api_key is None


def test_a_key_cannot_be_written_into_the_config(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, GOOD.replace('api_key_env = "LOCAL_KEY"', 'api_key = "sk-in-file"')))
    assert "providers.local" in str(caught.value) and "api_key_env" in str(caught.value)
    assert "sk-in-file" not in str(caught.value)


def _keys(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every settable key of ``model``, through nested tables, as ``table.key``."""
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        yield prefix + name
        annotation = field.annotation
        nested = [annotation, *typing.get_args(annotation)]
        for candidate in nested:
            for inner in (candidate, *typing.get_args(candidate)):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    yield from _keys(inner, f"{prefix}{name}.")


def test_every_config_key_is_documented_in_the_example():
    from pathlib import Path

    example = (Path(__file__).parents[2] / "examples" / "genledger.toml").read_text()

    def documented(key: str) -> bool:
        name = re.escape(key.rsplit(".", 1)[-1])
        # `name = ...` (perhaps commented out, or in an inline table) or a table `[name]`.
        return bool(re.search(rf"(^|[\s{{,#]){name} =|^\[{name}[.\]]", example, re.MULTILINE))

    missing = sorted({key for key in _keys(Settings) if not documented(key)})
    assert not missing, f"keys not in examples/genledger.toml: {missing}"


def test_logging_and_the_server_limits_come_from_the_environment_too(monkeypatch):
    monkeypatch.setenv("GENLEDGER_LOGGING__LEVEL", "off")
    monkeypatch.setenv("GENLEDGER_LOGGING__FORMAT", "text")
    monkeypatch.setenv("GENLEDGER_HEADER_TIMEOUT", "3")
    settings = load_settings(None)
    assert (settings.logging.level, settings.logging.format, settings.header_timeout) == ("off", "text", 3.0)
    monkeypatch.setenv("GENLEDGER_LOGGING__LEVEL", "loud")
    with pytest.raises(ConfigError, match=r"logging\.level"):
        load_settings(None)


def test_each_problem_names_where_its_value_came_from(tmp_path, monkeypatch):
    config = write(tmp_path, "port = 99999\n" + GOOD)
    monkeypatch.setenv("GENLEDGER_DASHBOARD_SECRET", "short")
    monkeypatch.setenv("GENLEDGER_LIMITS__BACKEND", "nope")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    lines = str(caught.value).splitlines()[1:]
    assert {line.strip() for line in lines} == {
        "GENLEDGER_DASHBOARD_SECRET (the environment): dashboard_secret: must be at least 32 characters long",
        "GENLEDGER_LIMITS__BACKEND (the environment): limits.backend: Input should be 'memory' or 'redis'",
        f"{config}: port: Input should be less than or equal to 65535",
    }
    # A variable for one key of a section the file has too: still the variable's value.
    sectioned = write(tmp_path, 'port = 99999\n[logging]\nformat = "text"\n' + GOOD)
    monkeypatch.setenv("GENLEDGER_LOGGING__LEVEL", "loud")
    with pytest.raises(ConfigError) as caught:
        load_settings(sectioned)
    assert "GENLEDGER_LOGGING__LEVEL (the environment): logging.level:" in str(caught.value)
    assert f"{sectioned}: port:" in str(caught.value)
    monkeypatch.delenv("GENLEDGER_LOGGING__LEVEL")
    monkeypatch.delenv("GENLEDGER_LIMITS__BACKEND")
    monkeypatch.setenv("GENLEDGER_LIMITS", '{"backend": "nope"}')  # a whole table as JSON
    with pytest.raises(ConfigError, match=r"GENLEDGER_LIMITS \(the environment\): limits\.backend"):
        load_settings(config)


@pytest.mark.parametrize(
    "slug", ["", "fast-chat", "acme/fast/chat", "acme/fast:floor", "acme/fast:nitro", " acme/x"]
)
def test_a_model_slug_that_could_not_be_called_is_refused(slug: str):
    """``/model/{author}/{slug}`` addresses author/name; ``:floor`` and ``:nitro`` sort a request."""
    model = {"provider": "demo", "prompt_price": "1", "completion_price": "1"}
    with pytest.raises(ConfigError) as caught:
        load_settings(None, models={slug: model})
    assert repr(slug) in str(caught.value)
    assert load_settings(None, models={"openai/gpt-4o:free": model}).models  # other suffixes are names


@pytest.mark.parametrize("entry", ["notanip", "10.0.0.0/33", "127.0.0.1 ", "localhost", ""])
def test_an_auth_failures_exempt_entry_must_be_an_address_or_a_network(entry: str):
    with pytest.raises(ConfigError) as caught:
        load_settings(None, limits={"auth_failures_exempt": ["10.0.0.0/8", entry]})
    assert f"limits.auth_failures_exempt: {entry!r} is not an IP address or network" in str(caught.value)


def test_auth_failures_exempt_takes_addresses_and_networks_of_both_versions():
    exempt = ["10.0.0.0/8", "192.168.1.7/24", "::1", "0:0:0:0:0:0:0:1", "fd00::/8", "127.0.0.1"]
    assert load_settings(None, limits={"auth_failures_exempt": exempt}).limits.auth_failures_exempt == exempt


def test_unknown_genledger_variables_are_named_with_the_closest_known_one():
    environ = {
        "GENLEDGER_DATABSE_URL": "postgresql://x",  # a typo
        "genledger_hots": "0.0.0.0",  # read without case, as the settings are
        "GENLEDGER_LIMITS_BACKEND": "redis",  # one underscore for two
        "GENLEDGER_PORT__X": "1",  # a setting that is not a table
        "GENLEDGER_NOTHING_LIKE_IT": "1",
        # What is read: settings, tables, the project's own variables. Others are not ours.
        "GENLEDGER_DATABASE_URL": "sqlite:///x.db",
        "genledger_port": "1",
        "GENLEDGER_LIMITS__BACKEND": "memory",
        "GENLEDGER_PROVIDERS__LOCAL__KIND": "demo",
        "GENLEDGER_CONFIG": "x.toml",
        "GENLEDGER_API_KEY": "sk",
        "GENLEDGER_REQUIRE_SERVICES": "1",
        "GENLEDGER_TEST_POSTGRES_URL": "postgresql://y",
        "GENLEDGER_BENCH_TRACEMALLOC": "/tmp/x",
        "OTHER_DATABSE_URL": "x",
    }
    assert unknown_variables(environ) == [
        UnknownVariable("GENLEDGER_DATABSE_URL", "GENLEDGER_DATABASE_URL"),
        UnknownVariable("GENLEDGER_LIMITS_BACKEND", "GENLEDGER_LIMITS__BACKEND"),
        UnknownVariable("GENLEDGER_NOTHING_LIKE_IT", None),
        UnknownVariable("GENLEDGER_PORT__X", "GENLEDGER_PORT"),
        UnknownVariable("genledger_hots", "GENLEDGER_HOST"),
    ]


def test_every_genledger_variable_the_project_uses_is_known():
    """Every GENLEDGER_* name the code, tests, scripts and docs use is a setting or one of
    NOT_SETTINGS: the command warns about none of the project's own variables."""
    from pathlib import Path

    root = Path(__file__).parents[2]
    files = [
        path
        for folder in ("src", "tests", "bench", "scripts", ".ci")
        for path in (root / folder).rglob("*")
        if path.is_file() and path.suffix not in (".pyc", ".png")
    ]
    files += [*root.glob("*.md")]
    # What the tests of the warning set on purpose.
    misspelt = {
        "GENLEDGER_DATABSE_URL",
        "GENLEDGER_NOTHING_LIKE_IT",
        "GENLEDGER_LIMITS_BACKEND",
        "GENLEDGER_PORT__X",
    }
    used = {
        name
        for file in files
        for name in re.findall(
            r"GENLEDGER_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_*])", file.read_text(errors="replace")
        )
    }
    assert {"GENLEDGER_BENCH_TRACEMALLOC", "GENLEDGER_REQUIRE_SERVICES", "GENLEDGER_VENV"} <= used
    assert {unknown.name for unknown in unknown_variables(dict.fromkeys(used, "x"))} <= misspelt


def test_a_fallback_sets_any_of_its_prices_and_the_rest_are_the_models():
    model = {
        "provider": "demo",
        "prompt_price": "1",
        "completion_price": "2",
        "cached_prompt_price": "0.5",
        "fallbacks": [{"provider": "spare", "prompt_price": "3", "cached_prompt_price": "1.5"}],
    }
    providers = {"demo": {"kind": "demo"}, "spare": {"kind": "demo", "display_name": "Spare"}}
    settings = load_settings(None, providers=providers, models={"acme/x": model})
    (spare,) = settings.endpoint_prices("acme/x").items()
    assert spare[0] == "Spare"
    assert (spare[1].prompt, spare[1].completion, spare[1].cached_prompt) == (
        Decimal("3"),
        Decimal("2"),
        Decimal("1.5"),
    )
    # Two endpoints that charge differently must not record the same provider name.
    providers["spare"] = {"kind": "demo"}  # recorded as genledger-demo, as the model's own
    with pytest.raises(ConfigError, match=r"models\.acme/x\.fallbacks\.0: provider 'spare' is recorded as"):
        load_settings(None, providers=providers, models={"acme/x": model})


def test_a_misspelt_key_names_the_nearest_there_is(tmp_path, monkeypatch):
    config = write(tmp_path, GOOD + '\n[limits]\nbakend = "redis"\n')
    with pytest.raises(ConfigError, match=r"limits\.bakend: .* \(did you mean limits\.backend\?\)"):
        load_settings(config)
    monkeypatch.setenv("GENLEDGER_LOGGING__LEVL", "debug")
    with pytest.raises(ConfigError, match=r"\(did you mean GENLEDGER_LOGGING__LEVEL\?\)"):
        load_settings(None)
    monkeypatch.delenv("GENLEDGER_LOGGING__LEVL")
    model = {"provider": "demo", "prompt_price": "1", "completion_price": "1", "prompt_pric": "1"}
    with pytest.raises(ConfigError) as caught:  # a key inside a named model: no guess across tables
        load_settings(None, models={"acme/x": model})
    assert "prompt_pric: Extra inputs are not permitted" in str(caught.value)


def test_the_late_grace_outlasts_the_longest_stream():
    """A stream is recorded when it ends, with the time it began: its attempts may take
    ``total_timeout`` and the stream then ``stream_timeout``. A grace of only the total
    timeout closed an hour's rollup (and a day's statement) while a generation of it could
    still commit, which the rollup then never counted."""
    settings = load_settings(
        None,
        routing={"total_timeout": 300},
        providers={
            "slow": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1", "stream_timeout": 1800},
            "demo": {"kind": "demo"},
        },
    )
    assert settings.late_grace >= 300 + 1800
    assert load_settings(None, audit={"statement_grace": 30}).late_grace == 30  # as configured
