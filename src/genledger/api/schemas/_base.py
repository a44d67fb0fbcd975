"""The two kinds of wire model: genledger's own objects (closed) and foreign shapes (open)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Closed(BaseModel):
    """An object genledger defines: exactly these keys."""

    model_config = ConfigDict(extra="forbid")


class Open(BaseModel):
    """An object in another API's shape (OpenAI, Anthropic, OpenRouter): these keys, and maybe more."""

    model_config = ConfigDict(extra="allow")
