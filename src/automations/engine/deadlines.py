"""A heap of due times, so the service can sleep exactly until the next deadline (no polling).

Entries are keyed by a time (event time for proactive windows and bucket sweeps, wall time for lost
followers) with a sequence number for a stable order. Entries are never removed eagerly: the owner
validates each popped entry (a bucket that was deleted or moved has a newer token) and drops stale
ones, which keeps every update O(log n).
"""

from __future__ import annotations

import heapq
import itertools
from typing import Generic, TypeVar

T = TypeVar("T")


class DeadlineHeap(Generic[T]):
    """A min-heap of ``(due, item)`` with lazy invalidation by the owner."""

    __slots__ = ("_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, due: float, item: T) -> None:
        """Schedules ``item`` at ``due``."""
        heapq.heappush(self._heap, (due, next(self._seq), item))

    def peek(self) -> tuple[float, T] | None:
        """The earliest entry, without removing it."""
        if not self._heap:
            return None
        due, _, item = self._heap[0]
        return due, item

    def pop(self) -> tuple[float, T]:
        """Removes and returns the earliest entry.

        Raises:
            IndexError: The heap is empty.
        """
        due, _, item = heapq.heappop(self._heap)
        return due, item

    def pop_due(self, limit: float) -> list[tuple[float, T]]:
        """Removes and returns every entry due at or before ``limit``, earliest first."""
        heap = self._heap
        out: list[tuple[float, T]] = []
        while heap and heap[0][0] <= limit:
            due, _, item = heapq.heappop(heap)
            out.append((due, item))
        return out

    def clear(self) -> None:
        """Removes everything."""
        self._heap.clear()
