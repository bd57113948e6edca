"""A metric group's sliding window: its samples in time order and the aggregates kept over them.

Memory is what bounds a metric (at most 200 bytes per sample or run held), so samples live in flat
``array('d')`` columns rather than as Python objects: 8 bytes for the time and 8 for the value (a
count's values are all 1 and are not kept; an ``outcome`` window also keeps a pointer to its
entity's key, 8 more). Samples mostly arrive in time order and are appended; a late one is
inserted at its place.

The aggregates are exact:

* ``sum`` / ``mean``: an exact running sum (:class:`ExactSum`, Shewchuk's partials, the algorithm
  behind ``math.fsum``), so that adding and removing samples never drifts: a mean of 300.0 is
  300.0, which matters to ``>=`` and ``<=``;
* ``min`` / ``max`` / ``p50`` ... ``p99``: every value held in sorted order (:class:`SortedValues`,
  sorted ``array('d')`` blocks of at most ``2 * LOAD`` values: insertion and removal move at most
  one block's values, a rank walks the block sizes). Percentiles are nearest-rank: the ``p``-th
  percentile of ``n`` values is the value at rank ``ceil(p / 100 * n)`` in ascending order, always
  one of the samples (no interpolation).
"""

from __future__ import annotations

import array
import bisect
import math
from collections.abc import Iterable, Iterator
from typing import Any

from automations.domain import metric_queries


class ExactSum:
    """A sum of floats, exact under any sequence of additions and subtractions."""

    __slots__ = ("_partials",)

    def __init__(self) -> None:
        self._partials: list[float] = []

    def add(self, x: float) -> None:
        """Adds ``x`` (subtract with ``add(-x)``)."""
        partials = self._partials
        i = 0
        for y in partials:
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo:
                partials[i] = lo
                i += 1
            x = hi
        partials[i:] = [x]

    def value(self) -> float:
        """The sum, correctly rounded."""
        return math.fsum(self._partials)

    def clear(self) -> None:
        """Back to 0."""
        self._partials.clear()


class SortedValues:
    """A multiset of floats in ascending order, for exact minimum, maximum and ranks."""

    __slots__ = ("_blocks", "_maxes", "_size")

    LOAD = 512
    """Blocks are split past ``2 * LOAD`` values."""

    def __init__(self) -> None:
        self._blocks: list[array.array[float]] = []
        self._maxes: list[float] = []
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @classmethod
    def of(cls, values: Iterable[float]) -> SortedValues:
        """A multiset of ``values``, built at once (sorted, then cut into blocks)."""
        built = cls()
        ordered = sorted(values)
        step = cls.LOAD
        for i in range(0, len(ordered), step):
            block = array.array("d", ordered[i : i + step])
            built._blocks.append(block)
            built._maxes.append(block[-1])
        built._size = len(ordered)
        return built

    def add(self, value: float) -> None:
        """Adds one value."""
        maxes = self._maxes
        if not maxes:
            self._blocks.append(array.array("d", (value,)))
            maxes.append(value)
        else:
            i = bisect.bisect_left(maxes, value)
            if i == len(maxes):
                i -= 1
                self._blocks[i].append(value)
                maxes[i] = value
            else:
                block = self._blocks[i]
                block.insert(bisect.bisect_right(block, value), value)
            if len(self._blocks[i]) > 2 * self.LOAD:
                block = self._blocks[i]
                half = len(block) // 2
                self._blocks[i : i + 1] = [block[:half], block[half:]]
                maxes[i : i + 1] = [block[half - 1], block[-1]]
        self._size += 1

    def remove(self, value: float) -> None:
        """Removes one occurrence of ``value`` (which must be held)."""
        i = bisect.bisect_left(self._maxes, value)
        block = self._blocks[i]
        del block[bisect.bisect_left(block, value)]
        self._size -= 1
        if block:
            self._maxes[i] = block[-1]
        else:
            del self._blocks[i]
            del self._maxes[i]

    def first(self) -> float:
        """The smallest value."""
        return self._blocks[0][0]

    def last(self) -> float:
        """The largest value."""
        return self._maxes[-1]

    def at(self, rank: int) -> float:
        """The value at 0-based ``rank`` in ascending order."""
        for block in self._blocks:
            if rank < len(block):
                return block[rank]
            rank -= len(block)
        raise IndexError(rank)

    def __iter__(self) -> Iterator[float]:
        for block in self._blocks:
            yield from block


def nearest_rank(sorted_values: SortedValues, percent: int) -> float:
    """The nearest-rank ``percent``-th percentile of a non-empty multiset."""
    n = len(sorted_values)
    rank = max(1, math.ceil(percent * n / 100))
    return sorted_values.at(rank - 1)


class Window:
    """One group's samples in ``occurred`` order, and the aggregates its metric needs.

    Attributes:
        times: Sample times (event time), ascending from ``head``.
        values: Sample values, parallel to ``times``; None when every value is 1 (a count: the
            aggregates follow from the number of samples, 8 bytes per sample).
        entities: For ``outcome`` metrics, the entity of each sample (parallel), else None.
        head: Index of the oldest live sample (those before it have left the window).
    """

    __slots__ = ("times", "values", "entities", "head", "_sum", "_sorted")

    def __init__(
        self, aggregation: str, *, with_entities: bool = False, ones: bool = False
    ) -> None:
        self.times: array.array[float] = array.array("d")
        self.values: array.array[float] | None = None if ones else array.array("d")
        self.entities: list[Any] | None = [] if with_entities else None
        self.head = 0
        self._sum = ExactSum() if aggregation in ("sum", "mean") and not ones else None
        self._sorted = (
            SortedValues()
            if not ones
            and (aggregation in ("min", "max") or aggregation in metric_queries.PERCENTILES)
            else None
        )

    def __len__(self) -> int:
        return len(self.times) - self.head

    def add(self, at: float, value: float, entity: Any = None) -> None:
        """Adds a sample taken at event time ``at`` (``value`` is 1 in a window of ones)."""
        times, values = self.times, self.values
        if not times or at >= times[-1]:
            times.append(at)
            if values is not None:
                values.append(value)
            if self.entities is not None:
                self.entities.append(entity)
        else:
            i = bisect.bisect_right(times, at, self.head)
            times.insert(i, at)
            if values is not None:
                values.insert(i, value)
            if self.entities is not None:
                self.entities.insert(i, entity)
        if self._sum is not None:
            self._sum.add(value)
        if self._sorted is not None:
            self._sorted.add(value)

    def _count_out(self, value: float) -> None:
        if self._sum is not None:
            self._sum.add(-value)
        if self._sorted is not None:
            self._sorted.remove(value)

    def expire(self, cutoff: float) -> list[Any]:
        """Drops the samples taken at or before ``cutoff``; returns their entities (outcome)."""
        times, values, entities = self.times, self.values, self.entities
        start = self.head
        end = bisect.bisect_right(times, cutoff, start)
        if end == start:
            return []
        gone = [] if entities is None else entities[start:end]
        if end == len(times):  # all gone: the aggregates start over (exactly 0)
            del times[:]
            if values is not None:
                del values[:]
            if entities is not None:
                del entities[:]
            self.head = 0
            if self._sum is not None:
                self._sum.clear()
            if self._sorted is not None:
                self._sorted = SortedValues()
            return gone
        if values is not None and (self._sum is not None or self._sorted is not None):
            if self._sorted is not None and end - start > len(times) - end:
                self._sorted = SortedValues.of(values[end:])  # cheaper than removing each
                if self._sum is not None:
                    for i in range(start, end):
                        self._sum.add(-values[i])
            else:
                for i in range(start, end):
                    self._count_out(values[i])
        self.head = end
        if end > 1024 and end * 2 > len(times):
            del times[:end]
            if values is not None:
                del values[:end]
            if entities is not None:
                del entities[:end]
            self.head = 0
        return gone

    def replace(self, at: float, entity: Any, value: float) -> None:
        """Sets the value of ``entity``'s sample, taken at ``at`` (outcome metrics)."""
        entities, values = self.entities, self.values
        assert entities is not None and values is not None
        times = self.times
        i = bisect.bisect_left(times, at, self.head)
        while i < len(times) and entities[i] != entity:
            i += 1
        if i == len(times):
            return
        old = values[i]
        if old != value:
            self._count_out(old)
            values[i] = value
            if self._sum is not None:
                self._sum.add(value)
            if self._sorted is not None:
                self._sorted.add(value)

    def aggregate(self, aggregation: str, range_seconds: float) -> float | None:
        """The window's value: 0 for a count, rate or sum of nothing, else None for no data."""
        n = len(self)
        if aggregation == "count":
            return float(n)
        if aggregation == "rate":
            return n / range_seconds
        if self.values is None:  # every value is 1
            if aggregation == "sum":
                return float(n)
            return 1.0 if n else None
        if aggregation == "sum":
            return self._sum.value() if n and self._sum is not None else 0.0
        if not n:
            return None
        if aggregation == "mean":
            assert self._sum is not None
            return self._sum.value() / n
        assert self._sorted is not None
        if aggregation == "min":
            return self._sorted.first()
        if aggregation == "max":
            return self._sorted.last()
        return nearest_rank(self._sorted, metric_queries.PERCENTILES[aggregation])

    def samples(self) -> Iterator[tuple[float, float, Any]]:
        """The live samples as ``(time, value, entity)`` (entity None without entities)."""
        entities, values = self.entities, self.values
        for i in range(self.head, len(self.times)):
            yield (
                self.times[i],
                1.0 if values is None else values[i],
                None if entities is None else entities[i],
            )
