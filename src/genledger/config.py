"""Settings: one frozen object, read once at the entry point.

Sources, strongest first: ``GENLEDGER_*`` environment variables, then the TOML file named
by ``--config`` or ``GENLEDGER_CONFIG``, then the defaults below. Without a file the
gateway runs on embedded defaults: a SQLite file in the working directory and the
built-in demo provider and model.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import tomllib
import typing
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from genledger.core.chat import SUFFIX_SORTS
from genledger.core.content import DEFAULT_MAX_CONTENT_BYTES, DEFAULT_RETENTION_DAYS, ContentPolicy
from genledger.core.credits import DEFAULT_IMAGE_PROMPT_TOKENS, DEFAULT_MAX_OUTPUT_TOKENS
from genledger.core.money import PriceError, per_token_pico, usd_to_pico
from genledger.core.pricing import Price

ENV_PREFIX = "GENLEDGER_"
DEFAULT_DATABASE_URL = "sqlite:///genledger.db"
DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_CONNECT_TIMEOUT_S = 5.0
DEFAULT_MAX_CONNECTIONS = 256
DEFAULT_TOTAL_TIMEOUT_S = 300.0
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
MIN_DASHBOARD_SECRET = 32
DEFAULT_RESERVATION_LEASE_S = 30.0
DEFAULT_SHUTDOWN_TIMEOUT_S = 30.0
DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_BODY_TIMEOUT_S = 30.0
DEFAULT_KEEP_ALIVE_TIMEOUT_S = 5
DEFAULT_MAX_CALLER_CONNECTIONS = 2048
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
DEFAULT_STREAM_TIMEOUT_S = 900.0
DEFAULT_AUTH_FAILURES = 20
DEFAULT_AUTH_FAILURE_WINDOW_S = 60.0
DEMO_PROVIDER = "demo"
DEMO_DISPLAY_NAME = "genledger-demo"
DEMO_MODEL = "genledger/demo"
DEMO_EMBEDDING_MODEL = "genledger/demo-embedding"


class ConfigError(Exception):
    """The configuration is invalid; the message names the bad key."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProviderConfig(_Strict):
    """One upstream provider."""

    kind: Literal["openai", "anthropic", "demo"]
    base_url: str | None = None
    api_key: SecretStr | None = Field(
        default=None, exclude=True, description="read from api_key_env when the settings are built"
    )
    api_key_env: str | None = Field(default=None, description="environment variable holding the API key")
    display_name: str | None = Field(default=None, description="recorded as provider_name")
    timeout: float = Field(
        default=DEFAULT_TIMEOUT_S,
        gt=0,
        description="seconds for the whole response (its body too), and for a stream's first chunk",
    )
    connect_timeout: float = Field(default=DEFAULT_CONNECT_TIMEOUT_S, gt=0)
    stream_idle_timeout: float = Field(
        default=DEFAULT_TIMEOUT_S, gt=0, description="seconds between a stream's later chunks"
    )
    stream_timeout: float = Field(
        default=DEFAULT_STREAM_TIMEOUT_S,
        gt=0,
        description="seconds a whole stream may last, however often its chunks come",
    )
    max_response_bytes: int = Field(
        default=DEFAULT_MAX_RESPONSE_BYTES,
        ge=1024,
        description="a non-streamed answer (or error body) larger than this is a 502",
    )
    max_connections: int = Field(default=DEFAULT_MAX_CONNECTIONS, ge=1)
    delay: float = Field(default=0.0, ge=0, description="demo only: seconds before answering")

    @model_validator(mode="before")
    @classmethod
    def _read_api_key(cls, data: Any) -> Any:
        """The key is read here, once, from the variable ``api_key_env`` names; never from a file."""
        if not isinstance(data, dict):
            return data
        if "api_key" in data:
            raise ValueError("api_key cannot be configured; name the variable holding it in api_key_env")
        name = data.get("api_key_env")
        if not isinstance(name, str) or not name:
            return data
        return {**data, "api_key": os.environ.get(name) or None}

    def check_key(self, name: str) -> None:
        """Raise :class:`ConfigError` if ``api_key_env`` names a variable that was not set (or
        was empty), for provider ``name``.

        Checked where the provider is called (serving, reconciling), not when the settings are
        read: the commands that only read the ledger need no provider's secret.
        """
        if self.api_key_env and self.api_key is None:
            raise ConfigError(
                f"providers.{name}.api_key_env: the environment variable {self.api_key_env} is not set"
            )

    @model_validator(mode="after")
    def _needs_base_url(self) -> ProviderConfig:
        if self.kind != "demo" and not self.base_url:
            raise ValueError(f"a provider of kind {self.kind!r} needs base_url")
        return self

    def shown_as(self, name: str) -> str:
        """The name generations it serves record as ``provider_name``: its ``display_name``, else
        the demo's own, else its key ``name``."""
        return self.display_name or (DEMO_DISPLAY_NAME if self.kind == "demo" else name)


class EndpointConfig(_Strict):
    """Another provider that can serve a model, tried in order when the ones before fail.

    Each of its prices defaults to the model's; set the ones this provider charges otherwise
    (``provider.sort`` and ``provider.max_price`` compare endpoints by them, and they are part
    of the model's price version).
    """

    provider: str
    upstream_model: str | None = None
    prompt_price: Decimal | None = None
    completion_price: Decimal | None = None
    cached_prompt_price: Decimal | None = None
    cache_write_price: Decimal | None = None
    reasoning_price: Decimal | None = None

    def price(self, model: Price) -> Price | None:
        """This endpoint's price: ``model``'s, with each price it sets of its own (None when it
        sets none: it charges as the model)."""
        own = (
            self.prompt_price,
            self.completion_price,
            self.cached_prompt_price,
            self.cache_write_price,
            self.reasoning_price,
        )
        if all(value is None for value in own):
            return None

        def either(mine: Decimal | None, theirs: Decimal | None) -> Decimal | None:
            return theirs if mine is None else mine

        return Price(
            prompt=self.prompt_price if self.prompt_price is not None else model.prompt,
            completion=self.completion_price if self.completion_price is not None else model.completion,
            cached_prompt=either(self.cached_prompt_price, model.cached_prompt),
            cache_write=either(self.cache_write_price, model.cache_write),
            reasoning=either(self.reasoning_price, model.reasoning),
        )

    @field_validator(
        "prompt_price", "completion_price", "cached_prompt_price", "cache_write_price", "reasoning_price"
    )
    @classmethod
    def _exact(cls, value: Decimal | None) -> Decimal | None:
        return _exact_price(value)


def _exact_price(value: Decimal | None) -> Decimal | None:
    if value is not None:
        try:
            per_token_pico(value)
        except PriceError as exc:
            raise ValueError(str(exc)) from None
    return value


class ModelConfig(_Strict):
    """A public model slug, the provider that serves it, and its prices (USD per million tokens)."""

    provider: str
    upstream_model: str | None = None
    fallbacks: list[EndpointConfig] = Field(default_factory=list)
    name: str | None = None
    kind: Literal["chat", "embeddings"] = Field(
        default="chat", description="chat: chat and prompt completions; embeddings: /embeddings"
    )
    prompt_price: Decimal
    completion_price: Decimal
    cached_prompt_price: Decimal | None = None
    cache_write_price: Decimal | None = None
    reasoning_price: Decimal | None = None
    context_length: int | None = Field(default=None, ge=1)
    max_output_tokens: int | None = Field(default=None, ge=1)

    @field_validator(
        "prompt_price", "completion_price", "cached_prompt_price", "cache_write_price", "reasoning_price"
    )
    @classmethod
    def _exact(cls, value: Decimal | None) -> Decimal | None:
        return _exact_price(value)

    @property
    def price(self) -> Price:
        return Price(
            prompt=self.prompt_price,
            completion=self.completion_price,
            cached_prompt=self.cached_prompt_price,
            cache_write=self.cache_write_price,
            reasoning=self.reasoning_price,
        )


class LimitsConfig(_Strict):
    """Rate limits and credit reservations (the ``[limits]`` table)."""

    requests_per_minute: int = Field(
        default=0, ge=0, description="per key unless the key sets its own; 0: none"
    )
    tokens_per_minute: int = Field(
        default=0, ge=0, description="per key unless the key sets its own; 0: none"
    )
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = DEFAULT_REDIS_URL

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        # What redis-py's from_url takes; checked here so a typo is a config error, not a
        # traceback in every worker.
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"must be a redis://, rediss:// or unix:// URL, got {value!r}")
        return value

    on_redis_failure: Literal["open", "closed"] = "open"
    default_max_output_tokens: int = Field(
        default=DEFAULT_MAX_OUTPUT_TOKENS, ge=1, description="reserved for requests without max_tokens"
    )
    image_prompt_tokens: int = Field(
        default=DEFAULT_IMAGE_PROMPT_TOKENS,
        ge=0,
        le=1_000_000,
        description="prompt tokens reserved for each image, beyond its URL's bytes",
    )
    reservation_lease: float = Field(
        default=DEFAULT_RESERVATION_LEASE_S,
        ge=0.5,
        le=3600,
        description="seconds a dead instance's reservations hold credit before another gives them back",
    )
    auth_failures: int = Field(
        default=DEFAULT_AUTH_FAILURES,
        ge=0,
        description="failed authentications from one address within auth_failure_window before 429; 0: none",
    )
    auth_failure_window: float = Field(default=DEFAULT_AUTH_FAILURE_WINDOW_S, gt=0, le=86400)
    auth_failures_exempt: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"],
        description="addresses or networks (10.0.0.0/8) never limited: a reverse proxy on this host, "
        "which all callers share",
    )

    @field_validator("auth_failures_exempt")
    @classmethod
    def _addresses_or_networks(cls, entries: list[str]) -> list[str]:
        # Checked here: an entry that is neither (a typo, a host name) would exempt nobody, silently.
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network (e.g. 10.0.0.1, 10.0.0.0/8, ::1)"
                ) from None
        return entries


class RoutingConfig(_Strict):
    """Fallbacks between provider endpoints, and the circuit breaker that skips failing ones."""

    total_timeout: float = Field(
        default=DEFAULT_TOTAL_TIMEOUT_S, gt=0, description="seconds for all attempts"
    )
    breaker_failures: int = Field(default=5, ge=1, description="consecutive failures that open the circuit")
    breaker_cooldown: float = Field(
        default=30.0, gt=0, description="seconds an open circuit skips its endpoint"
    )


class ContentStorageConfig(_Strict):
    """Whether prompts and answers are stored (GET /generation/content), how long, how large.

    Off by default; a key's own ``store_content`` overrides ``enabled``. Content is never logged.
    """

    enabled: bool = False
    retention_days: int = Field(
        default=DEFAULT_RETENTION_DAYS, ge=1, le=3650, description="days content is kept, then pruned"
    )
    max_bytes: int = Field(
        default=DEFAULT_MAX_CONTENT_BYTES,
        ge=1024,
        le=16 * 1024 * 1024,
        description="a generation's content larger than this (as JSON) is not stored",
    )

    def policy(self) -> ContentPolicy:
        return ContentPolicy(self.enabled, self.retention_days, self.max_bytes)


class AuditConfig(_Strict):
    """Auditing the ledger (the ``[audit]`` table)."""

    cost_tolerance: Decimal = Field(
        default=Decimal(0),
        ge=0,
        description="USD a provider's cost of one generation may differ from ours before it is drift",
    )
    statement_grace: float | None = Field(
        default=None,
        gt=0,
        description="seconds after a day's end before it may be closed "
        "(default: total_timeout + the longest stream_timeout + 60)",
    )

    @field_validator("cost_tolerance")
    @classmethod
    def _exact_tolerance(cls, value: Decimal) -> Decimal:
        try:
            usd_to_pico(value)
        except PriceError as exc:
            raise ValueError(str(exc)) from None
        return value


class LoggingConfig(_Strict):
    """What goes to stderr (the ``[logging]`` table): one line per request at ``info``."""

    level: Literal["debug", "info", "warning", "error", "off"] = Field(
        default="info", description="request lines are written at info; off: nothing at all"
    )
    format: Literal["json", "text", "auto"] = Field(
        default="auto", description="auto: text when stderr is a terminal, else JSON lines"
    )


def _demo_providers() -> dict[str, ProviderConfig]:
    return {DEMO_PROVIDER: ProviderConfig(kind="demo", display_name=DEMO_DISPLAY_NAME)}


def _demo_models() -> dict[str, ModelConfig]:
    return {
        DEMO_MODEL: ModelConfig(
            provider=DEMO_PROVIDER,
            name="genledger: Demo",
            prompt_price=Decimal("0.5"),
            completion_price=Decimal("1.5"),
            cached_prompt_price=Decimal("0.25"),
            context_length=8192,
            max_output_tokens=1024,
        ),
        DEMO_EMBEDDING_MODEL: ModelConfig(
            provider=DEMO_PROVIDER,
            name="genledger: Demo Embedding",
            kind="embeddings",
            prompt_price=Decimal("0.02"),
            completion_price=Decimal("0"),
            context_length=8192,
        ),
    }


class Settings(BaseSettings):
    """Everything the gateway is configured with. Frozen: build a new one to change it."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", frozen=True, extra="forbid"
    )

    database_url: str = DEFAULT_DATABASE_URL
    host: str = DEFAULT_HOST
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024)
    data_region: Literal["global", "us", "europe"] = "global"
    shutdown_timeout: float = Field(
        default=DEFAULT_SHUTDOWN_TIMEOUT_S,
        ge=0,
        le=3600,
        description="seconds in-flight requests get to finish after SIGTERM before open streams are ended",
    )
    header_timeout: float = Field(
        default=DEFAULT_HEADER_TIMEOUT_S,
        gt=0,
        le=3600,
        description="seconds a caller has to send a request's headers before the connection is closed",
    )
    body_timeout: float = Field(
        default=DEFAULT_BODY_TIMEOUT_S,
        gt=0,
        le=3600,
        description="seconds a caller has to send a request's body, once its headers are in, "
        "before the connection is closed",
    )
    keep_alive_timeout: int = Field(
        default=DEFAULT_KEEP_ALIVE_TIMEOUT_S, ge=1, le=3600, description="seconds an idle connection is kept"
    )
    max_connections: int = Field(
        default=DEFAULT_MAX_CALLER_CONNECTIONS,
        ge=1,
        description="connections (or requests) at once; requests beyond get 503",
    )
    providers: dict[str, ProviderConfig] = Field(default_factory=_demo_providers)
    models: dict[str, ModelConfig] = Field(default_factory=_demo_models)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    dashboard_secret: SecretStr | None = Field(
        default=None,
        min_length=MIN_DASHBOARD_SECRET,
        description="signs the dashboard's session cookies (GENLEDGER_DASHBOARD_SECRET); when unset, "
        "a SQLite ledger keeps a generated one beside its file",
    )
    content_storage: ContentStorageConfig = Field(default_factory=ContentStorageConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @field_validator("database_url")
    @classmethod
    def _a_ledger_that_lasts(cls, value: str) -> str:
        # The scheme is checked here, so another database is a config error when the settings
        # are read, not a failure to open the ledger (ledger/engine.py takes the same ones).
        scheme, found, _ = value.partition("://")
        if not found or scheme.partition("+")[0].lower() not in DATABASE_SCHEMES:
            what = f"unsupported database {scheme!r}" if found else "not a database URL"
            raise ValueError(f"{what}: use sqlite:///FILE or postgresql://USER@HOST/DATABASE")
        if value.startswith("sqlite"):
            database = value.partition("://")[2].lstrip("/").partition("?")[0]
            if database in ("", ":memory:") or "mode=memory" in value:
                raise ValueError(
                    "an in-memory SQLite ledger would be lost at exit, and each of genledger's "
                    "connections would see one of its own: give a file, e.g. sqlite:///genledger.db"
                )
        return value

    @property
    def longest_call(self) -> float:
        """Seconds a call may run, and a minute more: its attempts may take the total timeout,
        and its stream then its provider's ``stream_timeout``."""
        longest_stream = max((p.stream_timeout for p in self.providers.values()), default=0.0)
        return self.routing.total_timeout + longest_stream + 60

    @property
    def late_grace(self) -> float:
        """Seconds after a period's end before no generation of it can still commit (a stream is
        recorded when it ends, with the time it began: :attr:`longest_call`): closing a day's
        statement and rolling up an hour's activity wait this long."""
        return self.audit.statement_grace or self.longest_call

    def check_provider_keys(self) -> None:
        """Raise :class:`ConfigError` naming every provider whose key variable is not set
        (:meth:`ProviderConfig.check_key`), on one line: before serving them."""
        missing = []
        for name, provider in self.providers.items():
            try:
                provider.check_key(name)
            except ConfigError as exc:
                missing.append(str(exc))
        if missing:
            raise ConfigError("; ".join(missing))

    def with_log_level(self, level: str) -> Settings:
        """These settings with ``logging.level`` set to ``level`` (one of its choices)."""
        return self.model_copy(update={"logging": self.logging.model_copy(update={"level": level})})

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init arguments; the environment overrides them.
        return (env_settings, init_settings)

    @field_validator("models")
    @classmethod
    def _slugs_that_can_be_called(cls, models: dict[str, ModelConfig]) -> dict[str, ModelConfig]:
        """A slug is ``author/name``, as ``/model/{author}/{slug}`` addresses it, and does not end
        with a suffix that routing reads (``:floor``, ``:nitro``)."""
        for slug in models:
            author, _, name = slug.partition("/")
            if not author or not name or "/" in name or slug != slug.strip():
                raise ValueError(f"{slug!r}: a model is named author/name, e.g. acme/fast-chat")
            if slug.endswith(tuple(SUFFIX_SORTS)):
                raise ValueError(
                    f"{slug!r}: {', '.join(SUFFIX_SORTS)} at the end of a model sort its endpoints"
                )
        return models

    @model_validator(mode="after")
    def _models_name_known_providers(self) -> Settings:
        known = ", ".join(sorted(self.providers)) or "none"
        for slug, model in self.models.items():
            if model.provider not in self.providers:
                raise ValueError(
                    f"models.{slug}.provider: unknown provider {model.provider!r} (configured: {known})"
                )
            for index, fallback in enumerate(model.fallbacks):
                if fallback.provider not in self.providers:
                    raise ValueError(
                        f"models.{slug}.fallbacks.{index}.provider: unknown provider "
                        f"{fallback.provider!r} (configured: {known})"
                    )
            self._endpoint_prices_are_told_apart(slug, model)
        return self

    def _endpoint_prices_are_told_apart(self, slug: str, model: ModelConfig) -> None:
        """A generation records its provider by name; two endpoints of a model that charge
        differently under one name could not be told apart when it is rated again."""
        charged: dict[str, Price] = {self.providers[model.provider].shown_as(model.provider): model.price}
        for index, fallback in enumerate(model.fallbacks):
            name = self.providers[fallback.provider].shown_as(fallback.provider)
            price = fallback.price(model.price) or model.price
            if name in charged and charged[name] != price:
                raise ValueError(
                    f"models.{slug}.fallbacks.{index}: provider {fallback.provider!r} is recorded as "
                    f"{name!r}, as another endpoint of this model that charges otherwise; give its "
                    "provider a display_name of its own"
                )
            charged[name] = price

    def endpoint_prices(self, slug: str) -> dict[str, Price]:
        """The prices of ``slug``'s fallback endpoints that charge otherwise than the model, by
        the provider name the generations they serve record (part of its price version)."""
        model = self.models[slug]
        found: dict[str, Price] = {}
        for fallback in model.fallbacks:
            price = fallback.price(model.price)
            if price is not None and price != model.price:
                found[self.providers[fallback.provider].shown_as(fallback.provider)] = price
        return found


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Read the TOML file at ``path`` (or ``$GENLEDGER_CONFIG``), apply the environment.

    Raises :class:`ConfigError` naming the offending key.
    """
    path = path or os.environ.get("GENLEDGER_CONFIG") or None
    data: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        try:
            data = tomllib.loads(file.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {file}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{file}: not UTF-8 text (TOML is UTF-8)") from None
        except OSError as exc:  # a folder, no permission, ...
            raise ConfigError(f"cannot read the config file {file}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    from_file = set(data)
    data.update(overrides)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, from_file - set(overrides))) from None
    except SettingsError as exc:  # an environment variable that is not what its field takes
        raise ConfigError(f"the environment: {exc}") from None


def _describe(exc: ValidationError, path: str | os.PathLike[str] | None, from_file: set[str]) -> str:
    """One line per problem, each naming where its value came from: the file, or the
    environment variable (``GENLEDGER_PORT``, ``GENLEDGER_LIMITS__BACKEND``)."""
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        key = ".".join(loc)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "too_short" and isinstance(error.get("input"), str):  # a SecretStr
            message = f"must be at least {error['ctx']['min_length']} characters long"
        # The environment beats the file, key by key (a section in the file and a variable for
        # one of its keys merge): a variable that covers ``loc`` set the value.
        variable = _variable(loc) if loc else None
        if error["type"] == "extra_forbidden":  # a misspelt key: name the nearest one there is
            message += _suggestion(loc, from_environment=variable is not None)
        if variable is not None:
            where = f"{variable} (the environment): "
        elif path and (not loc or loc[0] in from_file):
            where = f"{path}: "
        else:
            where = ""
        lines.append(f"{where}{key}: {message}" if key else f"{where}{message}")
    return "invalid configuration\n  " + "\n  ".join(lines)


def _variable(loc: list[str]) -> str | None:
    """The environment variable that set the value at ``loc`` (``GENLEDGER_LIMITS__BACKEND``,
    or ``GENLEDGER_LIMITS`` holding JSON), if one did."""
    names = {name.upper() for name in os.environ}
    for end in range(len(loc), 0, -1):
        variable = "GENLEDGER_" + "__".join(loc[:end]).upper()
        if variable in names:
            return variable
    return None


NOT_SETTINGS = frozenset(
    {
        "GENLEDGER_CONFIG",  # the config file's path (load_settings)
        "GENLEDGER_API_KEY",  # the client's key and base URL (genledger.client)
        "GENLEDGER_BASE_URL",
        "GENLEDGER_REQUIRE_SERVICES",  # the tests and CI: a missing service fails, not skips
        "GENLEDGER_VENV",  # scripts/_env.sh
        "GENLEDGER_CHROMIUM",  # the browser tests
    }
)
"""``GENLEDGER_*`` variables the project reads that are not settings."""
NOT_SETTINGS_PREFIXES = ("GENLEDGER_TEST_", "GENLEDGER_BENCH_")
"""Families of such variables: the tests' services and keys, the benchmarks' switches."""


class UnknownVariable(NamedTuple):
    """A ``GENLEDGER_*`` environment variable genledger does not read, and the closest one it does."""

    name: str
    closest: str | None


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[UnknownVariable]:
    """The ``GENLEDGER_*`` variables of ``environ`` (``os.environ``) that nothing reads: one
    misspelt would otherwise leave its setting at the default, silently.

    Names are matched without case, as the settings read them. Variables under a table
    (``GENLEDGER_LIMITS__BACKEND``) are the settings' own to refuse.
    """
    environ = os.environ if environ is None else environ
    variables = _setting_variables(Settings)
    settings = set(variables)
    tables = tuple(
        f"{ENV_PREFIX}{name.upper()}__"
        for name, field in Settings.model_fields.items()
        if _is_table(field.annotation)
    )
    known = [*variables, *sorted(NOT_SETTINGS)]
    unknown = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in settings or upper in NOT_SETTINGS:
            continue
        if upper.startswith(tables) or upper.startswith(NOT_SETTINGS_PREFIXES):
            continue
        unknown.append(UnknownVariable(name, _closest(upper, known)))
    return unknown


def _setting_variables(model: type[BaseModel], prefix: str = ENV_PREFIX) -> list[str]:
    """The variables that set ``model``'s fields: each field's, and each field's of its tables."""
    names = []
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        variable = prefix + name.upper()
        names.append(variable)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            names += _setting_variables(field.annotation, variable + "__")
    return names


def _is_table(annotation: Any) -> bool:
    return typing.get_origin(annotation) is dict or (
        isinstance(annotation, type) and issubclass(annotation, BaseModel)
    )


def _suggestion(loc: list[str], *, from_environment: bool) -> str:
    """`` (did you mean X?)`` for a key that is no setting, X the nearest that is (its
    variable, or its dotted name), or nothing when none is near."""
    variable = ENV_PREFIX + "__".join(loc).upper()
    closest = _closest(variable, _setting_variables(Settings))
    if closest is None or closest.count("__") != len(loc) - 1:  # only a key of the same table
        return ""
    if from_environment:
        return f" (did you mean {closest}?)"
    return f" (did you mean {closest.removeprefix(ENV_PREFIX).lower().replace('__', '.')}?)"


def _closest(name: str, known: list[str]) -> str | None:
    # Compared without the prefix every name shares, which would make any two look alike.
    tails = {variable.removeprefix(ENV_PREFIX): variable for variable in known}
    match = difflib.get_close_matches(name.removeprefix(ENV_PREFIX), list(tails), n=1)
    return tails[match[0]] if match else None
