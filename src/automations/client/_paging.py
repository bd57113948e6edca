"""Following ``next_page_token`` for clients of the List methods (the CLI, ``automations.Client``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

PAGE_SIZE = 500
"""Items asked for per page."""


def pages(
    fetch: Callable[[str, int], tuple[list[T], str]],
    limit: int | None,
    *,
    page_size: int = PAGE_SIZE,
) -> Iterator[T]:
    """Yields the items of every page, at most ``limit`` of them.

    Args:
        fetch: ``(page_token, page_size) -> (items, next_page_token)``; one List call.
        limit: The most items to yield; None for all.
        page_size: Items asked for per call.
    """
    token = ""
    count = 0
    while True:
        size = page_size if limit is None else min(page_size, limit - count)
        if size <= 0:
            return
        items, token = fetch(token, size)
        for item in items:
            yield item
            count += 1
            if limit is not None and count >= limit:
                return
        if not token:
            return
