"""Reports and operations on the wire: ``/activity``, ``/statements``, ``/health``."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import Field

from genledger.api.schemas._base import Closed, Open


class ActivityItem(Open):
    """Without `group_by`: one item per UTC day, model and provider (`date`, `model`,
    `model_permaslug`, `endpoint_id`, `provider_name`); with it, the grouping keys asked for
    (`date`, `hour`, `model`, `provider_name`, `api_key_hash`, `external_user`, `session_id`,
    `metadata.<key>`). Either way the sums below, and `workspace_id` with `group_by=workspace`."""

    usage: float = Field(description="USD")
    byok_usage_inference: float
    requests: int
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cached_tokens: int


class ActivityResponse(Closed):
    data: list[ActivityItem]


class StatementTotal(Closed):
    api_key_hash: str | None = Field(description="null: a key deleted since.")
    model: str
    requests: int
    usage: float


class Statement(Closed):
    day: date
    closed_at: datetime
    record_count: int
    hash: str
    previous_hash: str
    totals: list[StatementTotal]


class StatementList(Closed):
    data: list[Statement]


class Health(Closed):
    status: Literal["ok"]
