"""Pages of a cursor-paginated list, and iteration across them (as openai-python's cursor pages).

A page holds its items (``data``) and the cursor of the next page (``next_cursor``, ``None`` on
the last one). Iterating a page yields its items and then those of every later page, asking
for each page once, only when the previous one is used up. Each new iteration walks again
from that page (and asks again for the pages after it): nothing is cached, so a long walk
holds one page at a time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator, Sequence
from typing import Any, Generic, TypeVar

__all__ = ["AsyncPage", "AsyncPaginator", "SyncPage"]

ItemT = TypeVar("ItemT")

_NO_NEXT_PAGE = "no next page: check has_next_page() before get_next_page()"


class SyncPage(Generic[ItemT]):
    """One page of a list; ``for item in page`` walks this page and every later one.

    Usage::

        page = client.generations.list(model="openai/gpt-4o", limit=100)
        for generation in page:  # every match, 100 per request
            print(generation.id)

        for page in client.generations.list(limit=100).iter_pages():  # page by page
            print(len(page.data), page.next_cursor)
    """

    data: list[ItemT]
    """This page's items, in the list's order."""
    next_cursor: str | None
    """The cursor of the next page, ``None`` on the last page."""

    def __init__(
        self, *, data: Sequence[ItemT], next_cursor: str | None, fetch: Callable[[str], SyncPage[ItemT]]
    ) -> None:
        self.data = list(data)
        self.next_cursor = next_cursor
        self._fetch = fetch

    def has_next_page(self) -> bool:
        """Whether another page follows this one."""
        return self.next_cursor is not None

    def get_next_page(self) -> SyncPage[ItemT]:
        """Request the next page (raises ``RuntimeError`` on the last page)."""
        if self.next_cursor is None:
            raise RuntimeError(_NO_NEXT_PAGE)
        return self._fetch(self.next_cursor)

    def iter_pages(self) -> Iterator[SyncPage[ItemT]]:
        """This page, then each following page as it is requested."""
        page = self
        yield page
        while page.next_cursor is not None:
            page = page.get_next_page()
            yield page

    def __iter__(self) -> Iterator[ItemT]:
        for page in self.iter_pages():
            yield from page.data

    def __repr__(self) -> str:
        return f"SyncPage(items={len(self.data)}, next_cursor={self.next_cursor!r})"


class AsyncPage(Generic[ItemT]):
    """One page of a list, async: ``async for item in page`` walks this page and every later one.

    The same as :class:`SyncPage`, with ``get_next_page`` awaitable and ``iter_pages`` an async
    iterator.
    """

    data: list[ItemT]
    """This page's items, in the list's order."""
    next_cursor: str | None
    """The cursor of the next page, ``None`` on the last page."""

    def __init__(
        self,
        *,
        data: Sequence[ItemT],
        next_cursor: str | None,
        fetch: Callable[[str], Awaitable[AsyncPage[ItemT]]],
    ) -> None:
        self.data = list(data)
        self.next_cursor = next_cursor
        self._fetch = fetch

    def has_next_page(self) -> bool:
        """Whether another page follows this one."""
        return self.next_cursor is not None

    async def get_next_page(self) -> AsyncPage[ItemT]:
        """Request the next page (raises ``RuntimeError`` on the last page)."""
        if self.next_cursor is None:
            raise RuntimeError(_NO_NEXT_PAGE)
        return await self._fetch(self.next_cursor)

    async def iter_pages(self) -> AsyncIterator[AsyncPage[ItemT]]:
        """This page, then each following page as it is requested."""
        page = self
        yield page
        while page.next_cursor is not None:
            page = await page.get_next_page()
            yield page

    async def __aiter__(self) -> AsyncIterator[ItemT]:
        async for page in self.iter_pages():
            for item in page.data:
                yield item

    def __repr__(self) -> str:
        return f"AsyncPage(items={len(self.data)}, next_cursor={self.next_cursor!r})"


class AsyncPaginator(Generic[ItemT]):
    """What an async ``list()`` returns: await it for the first page, or iterate every item.

    Usage::

        page = await client.generations.list(limit=100)  # the first AsyncPage
        async for generation in client.generations.list(limit=100):  # every match
            print(generation.id)

    Nothing is requested until it is awaited or iterated; each of those starts a new walk.
    """

    def __init__(self, first_page: Callable[[], Awaitable[AsyncPage[ItemT]]]) -> None:
        self._first_page = first_page

    def __await__(self) -> Generator[Any, None, AsyncPage[ItemT]]:
        return self._first_page().__await__()

    async def __aiter__(self) -> AsyncIterator[ItemT]:
        async for item in await self:
            yield item
