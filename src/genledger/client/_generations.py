"""``client.generations``: one generation (``GET /generation``) and the list (``GET /generations``)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final

from ._base import RequestSpec
from ._models import Generation, GenerationList
from ._pagination import AsyncPage, AsyncPaginator, SyncPage
from ._query import USD, Moment, generation_list_params
from ._types import NOT_GIVEN, NotGiven, TimeoutTypes
from .errors import NotFoundResponseError

if TYPE_CHECKING:
    from ._client import AsyncClient, Client

__all__ = ["AsyncGenerationsResource", "GenerationsResource"]

DEFAULT_WAIT_TIMEOUT: Final = 30.0
DEFAULT_POLL_INTERVAL: Final = 0.5
DEFAULT_MAX_POLL_INTERVAL: Final = 5.0


def _spec(id: str, timeout: TimeoutTypes | NotGiven, max_retries: int | NotGiven) -> RequestSpec[Generation]:
    if not isinstance(id, str) or not id.strip():
        raise ValueError(f"id must be a non-empty generation id, got {id!r}")
    return RequestSpec(
        method="GET",
        path="generation",
        params={"id": id},
        model=Generation,
        timeout=timeout,
        max_retries=max_retries,
    )


def _list_spec(
    filters: Mapping[str, str],
    cursor: str | None,
    timeout: TimeoutTypes | NotGiven,
    max_retries: int | NotGiven,
) -> RequestSpec[GenerationList]:
    return RequestSpec(
        method="GET",
        path="generations",
        params={**filters, "cursor": cursor} if cursor is not None else filters,
        model=GenerationList,
        validates="body",
        timeout=timeout,
        max_retries=max_retries,
    )


class PollSchedule:
    """The waits of :meth:`GenerationsResource.wait`: doubling intervals until a deadline.

    ``next_delay()`` returns the next wait, shortened so as not to pass the deadline, or
    ``None`` once the deadline has passed. ``clock`` is monotonic seconds (injectable).
    """

    def __init__(
        self,
        *,
        timeout: float,
        poll_interval: float,
        max_poll_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (math.isfinite(timeout) and timeout >= 0):
            raise ValueError(f"timeout must be a finite number of seconds >= 0, got {timeout!r}")
        if not (poll_interval > 0 and max_poll_interval >= poll_interval):
            raise ValueError("need 0 < poll_interval <= max_poll_interval")
        self._clock = clock
        self._deadline = clock() + timeout
        self._interval = poll_interval
        self._max_interval = max_poll_interval

    def next_delay(self) -> float | None:
        """Seconds to wait before the next poll, or ``None`` when time is up."""
        remaining = self._deadline - self._clock()
        if remaining <= 0:
            return None
        delay = min(self._interval, remaining)
        self._interval = min(self._interval * 2, self._max_interval)
        return delay


class GenerationsResource:
    """Generation history, as ``client.generations``."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def get_generation(
        self,
        *,
        id: str,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> Generation:
        """Get request & usage metadata for a generation (``GET /generation?id=...``).

        ``timeout`` and ``max_retries`` override the client's settings for this call. An empty
        or blank ``id`` raises ``ValueError`` before any request is sent.

        Raises:
            NotFoundResponseError: no generation with that id is visible to this key.
            APIStatusError: any other error response (see ``genledger.client.errors``).
            APIConnectionError: no response, after retries.
            ResponseValidationError: a 200 whose body is not a generation.
        """
        return self._client._request(_spec(id, timeout, max_retries))

    def list(
        self,
        *,
        created_after: Moment | None = None,
        created_before: Moment | None = None,
        model: str | None = None,
        provider_name: str | None = None,
        finish_reason: str | None = None,
        streamed: bool | None = None,
        cancelled: bool | None = None,
        external_user: str | None = None,
        session_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
        api_key_hash: str | None = None,
        min_cost: USD | None = None,
        limit: int | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> SyncPage[Generation]:
        """List generations, newest first (``GET /generations``); returns the first page.

        Iterating the page yields every matching generation, requesting the following pages
        as needed (``limit`` per request, the server's default 100 when omitted, at most 1000);
        ``page.iter_pages()`` walks page by page. Filters left as ``None`` are not applied;
        given ones must all match:

        - ``created_after`` / ``created_before``: bounds on ``created_at`` (a ``datetime``,
          naive meaning UTC; a ``date``; or ISO 8601 text).
        - ``model``, ``provider_name``, ``finish_reason``, ``external_user``, ``session_id``:
          exact values. ``streamed``, ``cancelled``: flags.
        - ``metadata``: every pair must be in the generation's metadata
          (sent as ``metadata[key]=value``).
        - ``min_cost``: the least ``total_cost`` in US dollars (``Decimal``, number or text).
        - ``api_key_hash``: one key's generations; a management key may name any key, another
          key only itself (else 403).

        ``timeout`` and ``max_retries`` apply to each page's request.

        Raises:
            BadRequestResponseError: a filter the server refuses; ``error.metadata["param"]``
                names it.
            ForbiddenResponseError: ``api_key_hash`` of another key, without a management key.
            APIStatusError, APIConnectionError, ResponseValidationError: as for
                :meth:`get_generation`, from this call or from iterating later pages.
        """
        filters = generation_list_params(
            created_after=created_after,
            created_before=created_before,
            model=model,
            provider_name=provider_name,
            finish_reason=finish_reason,
            streamed=streamed,
            cancelled=cancelled,
            external_user=external_user,
            session_id=session_id,
            metadata=metadata,
            api_key_hash=api_key_hash,
            min_cost=min_cost,
            limit=limit,
        )

        def fetch(cursor: str | None) -> SyncPage[Generation]:
            body = self._client._request(_list_spec(filters, cursor, timeout, max_retries))
            return SyncPage(data=body.data, next_cursor=body.next_cursor, fetch=fetch)

        return fetch(None)

    def wait(
        self,
        *,
        id: str,
        timeout: float = DEFAULT_WAIT_TIMEOUT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
    ) -> Generation:
        """Poll until the generation exists, for at most about ``timeout`` seconds.

        A generation is recorded shortly after its completion finishes, so the first lookups
        may answer 404. Each 404 is followed by a wait that starts at ``poll_interval`` and
        doubles up to ``max_poll_interval``. When ``timeout`` runs out, the last
        :class:`NotFoundResponseError` is raised (there is no separate timeout error). The
        deadline is checked between polls, so one slow request may overrun it. Any other
        error is raised at once; transient ones are first retried as usual.
        """
        schedule = PollSchedule(
            timeout=timeout, poll_interval=poll_interval, max_poll_interval=max_poll_interval
        )
        spec = _spec(id, NOT_GIVEN, NOT_GIVEN)
        while True:
            try:
                return self._client._request(spec)
            except NotFoundResponseError:
                delay = schedule.next_delay()
                if delay is None:
                    raise
            self._client._sleep(delay)


class AsyncGenerationsResource:
    """Generation history, as ``async_client.generations``."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def get_generation(
        self,
        *,
        id: str,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,  # noqa: ASYNC109 - an HTTP timeout, as on the sync twin
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> Generation:
        """Awaitable :meth:`GenerationsResource.get_generation`; same arguments and errors."""
        return await self._client._request(_spec(id, timeout, max_retries))

    def list(
        self,
        *,
        created_after: Moment | None = None,
        created_before: Moment | None = None,
        model: str | None = None,
        provider_name: str | None = None,
        finish_reason: str | None = None,
        streamed: bool | None = None,
        cancelled: bool | None = None,
        external_user: str | None = None,
        session_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
        api_key_hash: str | None = None,
        min_cost: USD | None = None,
        limit: int | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> AsyncPaginator[Generation]:
        """Async :meth:`GenerationsResource.list`: same filters and errors.

        ``await`` the result for the first :class:`AsyncPage`, or ``async for`` over it for
        every matching generation across pages. Nothing is sent before either.
        """
        filters = generation_list_params(
            created_after=created_after,
            created_before=created_before,
            model=model,
            provider_name=provider_name,
            finish_reason=finish_reason,
            streamed=streamed,
            cancelled=cancelled,
            external_user=external_user,
            session_id=session_id,
            metadata=metadata,
            api_key_hash=api_key_hash,
            min_cost=min_cost,
            limit=limit,
        )

        async def fetch(cursor: str | None) -> AsyncPage[Generation]:
            body = await self._client._request(_list_spec(filters, cursor, timeout, max_retries))
            return AsyncPage(data=body.data, next_cursor=body.next_cursor, fetch=fetch)

        return AsyncPaginator(lambda: fetch(None))

    async def wait(
        self,
        *,
        id: str,
        timeout: float = DEFAULT_WAIT_TIMEOUT,  # noqa: ASYNC109 - a polling deadline, as on the sync twin
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
    ) -> Generation:
        """Awaitable :meth:`GenerationsResource.wait`.

        Same arguments; raises the last ``NotFoundResponseError`` when ``timeout`` runs out.
        """
        schedule = PollSchedule(
            timeout=timeout, poll_interval=poll_interval, max_poll_interval=max_poll_interval
        )
        spec = _spec(id, NOT_GIVEN, NOT_GIVEN)
        while True:
            try:
                return await self._client._request(spec)
            except NotFoundResponseError:
                delay = schedule.next_delay()
                if delay is None:
                    raise
            await self._client._sleep(delay)
