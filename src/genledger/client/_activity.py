"""``client.activity``: usage totals per day and endpoint (``GET /activity``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date as Date
from typing import TYPE_CHECKING

from ._base import RequestSpec
from ._models import ActivityItem, ActivityList
from ._query import activity_params
from ._types import NOT_GIVEN, NotGiven, TimeoutTypes

if TYPE_CHECKING:
    from ._client import AsyncClient, Client

__all__ = ["ActivityResource", "AsyncActivityResource"]


def _spec(
    date: Date | str | None,
    api_key_hash: str | None,
    group_by: str | Sequence[str] | None,
    timeout: TimeoutTypes | NotGiven,
    max_retries: int | NotGiven,
) -> RequestSpec[ActivityList]:
    return RequestSpec(
        method="GET",
        path="activity",
        params=activity_params(date=date, api_key_hash=api_key_hash, group_by=group_by),
        model=ActivityList,
        validates="body",
        timeout=timeout,
        max_retries=max_retries,
    )


class ActivityResource:
    """Usage totals, as ``client.activity``."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def get(
        self,
        *,
        date: Date | str | None = None,
        api_key_hash: str | None = None,
        group_by: str | Sequence[str] | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> list[ActivityItem]:
        """Usage per UTC day and endpoint (``GET /activity``), one :class:`ActivityItem` per row.

        ``date`` keeps one day (a ``date``, a ``datetime``'s own calendar date, or
        ``YYYY-MM-DD``); ``api_key_hash`` one key's usage (a management key may name any key).
        ``group_by`` groups the rows instead by one key or several, sent comma-separated:
        ``"day"``, ``"hour"``, ``"model"``, ``"provider"``, ``"key"``, ``"user"``,
        ``"session"``, ``"metadata.<key>"`` (or OpenRouter's ``"workspace"``, which changes
        nothing but a ``workspace_id``); each row then carries its group's keys and the sums.

        Raises:
            BadRequestResponseError: a parameter the server refuses (``error.metadata["param"]``).
            ForbiddenResponseError: another key's ``api_key_hash`` without a management key.
            APIStatusError, APIConnectionError, ResponseValidationError: as for every call.
        """
        body = self._client._request(_spec(date, api_key_hash, group_by, timeout, max_retries))
        return list(body.data)


class AsyncActivityResource:
    """Usage totals, as ``async_client.activity``."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def get(
        self,
        *,
        date: Date | str | None = None,
        api_key_hash: str | None = None,
        group_by: str | Sequence[str] | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,  # noqa: ASYNC109 - an HTTP timeout, as on the sync twin
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> list[ActivityItem]:
        """Awaitable :meth:`ActivityResource.get`; same arguments and errors."""
        body = await self._client._request(_spec(date, api_key_hash, group_by, timeout, max_retries))
        return list(body.data)
