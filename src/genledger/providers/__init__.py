"""Upstream providers behind one interface (:class:`~genledger.providers.base.Provider`).

One module per provider; :func:`build_provider` turns a provider's config into one.
"""

from __future__ import annotations

from genledger.config import ProviderConfig
from genledger.providers.base import EventStream, Provider, UpstreamCall


def build_provider(name: str, config: ProviderConfig) -> Provider:
    """The provider adapter for one ``[providers.NAME]`` table of the config.

    Raises :class:`~genledger.config.ConfigError` if its key's variable was not set.
    """
    config.check_key(name)
    if config.kind == "demo":
        from genledger.providers.demo import DemoProvider

        return DemoProvider(name, config)
    if config.kind == "openai":
        from genledger.providers.openai_compat import OpenAICompatProvider

        return OpenAICompatProvider(name, config)
    if config.kind == "anthropic":
        from genledger.providers.anthropic import AnthropicProvider

        return AnthropicProvider(name, config)
    raise ValueError(f"unknown provider kind {config.kind!r}")


__all__ = ["EventStream", "Provider", "UpstreamCall", "build_provider"]
