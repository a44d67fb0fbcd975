"""``client.credits``: credits bought and used by the key's owner (``GET /credits``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._base import RequestSpec
from ._models import Credits
from ._types import NOT_GIVEN, NotGiven, TimeoutTypes

if TYPE_CHECKING:
    from ._client import AsyncClient, Client

__all__ = ["AsyncCreditsResource", "CreditsResource"]


def _spec(timeout: TimeoutTypes | NotGiven, max_retries: int | NotGiven) -> RequestSpec[Credits]:
    return RequestSpec(method="GET", path="credits", model=Credits, timeout=timeout, max_retries=max_retries)


class CreditsResource:
    """The owner's credits, as ``client.credits``."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def get(
        self, *, timeout: TimeoutTypes | NotGiven = NOT_GIVEN, max_retries: int | NotGiven = NOT_GIVEN
    ) -> Credits:
        """Fetch the total credits bought and the total usage, in US dollars.

        ``timeout`` and ``max_retries`` override the client's settings for this call.
        """
        return self._client._request(_spec(timeout, max_retries))


class AsyncCreditsResource:
    """The owner's credits, as ``async_client.credits``."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def get(
        self,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,  # noqa: ASYNC109 - an HTTP timeout, as on the sync twin
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> Credits:
        """Fetch the total credits bought and the total usage, in US dollars.

        ``timeout`` and ``max_retries`` override the client's settings for this call.
        """
        return await self._client._request(_spec(timeout, max_retries))
