"""``client.key``: limits and usage of the API key making the request (``GET /key``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._base import RequestSpec
from ._models import KeyInfo
from ._types import NOT_GIVEN, NotGiven, TimeoutTypes

if TYPE_CHECKING:
    from ._client import AsyncClient, Client

__all__ = ["AsyncKeyResource", "KeyResource"]


def _spec(timeout: TimeoutTypes | NotGiven, max_retries: int | NotGiven) -> RequestSpec[KeyInfo]:
    return RequestSpec(method="GET", path="key", model=KeyInfo, timeout=timeout, max_retries=max_retries)


class KeyResource:
    """The current API key, as ``client.key``."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def get(
        self, *, timeout: TimeoutTypes | NotGiven = NOT_GIVEN, max_retries: int | NotGiven = NOT_GIVEN
    ) -> KeyInfo:
        """Fetch the current key's label, spending limit, remaining limit and usage.

        ``timeout`` and ``max_retries`` override the client's settings for this call.
        """
        return self._client._request(_spec(timeout, max_retries))


class AsyncKeyResource:
    """The current API key, as ``async_client.key``."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def get(
        self,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,  # noqa: ASYNC109 - an HTTP timeout, as on the sync twin
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> KeyInfo:
        """Fetch the current key's label, spending limit, remaining limit and usage.

        ``timeout`` and ``max_retries`` override the client's settings for this call.
        """
        return await self._client._request(_spec(timeout, max_retries))
