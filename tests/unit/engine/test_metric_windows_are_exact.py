"""A metric window's aggregates are exact: percentiles by nearest rank, sums without drift."""

from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from automations.engine.metrics.windows import ExactSum, SortedValues, Window, nearest_rank

values = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)


@given(st.lists(values, min_size=1, max_size=300), st.data())
@settings(max_examples=200, deadline=None)
def test_sorted_values_keep_every_value_in_order_through_adds_and_removes(
    items: list[float], data: st.DataObject
) -> None:
    SortedValues.LOAD = 4  # small blocks: splits and empty blocks happen
    try:
        held = SortedValues()
        for item in items:
            held.add(item)
        removed = data.draw(st.lists(st.sampled_from(items), max_size=len(items), unique=True))
        kept = list(items)
        for item in removed:
            held.remove(item)
            kept.remove(item)
        assert list(held) == sorted(kept)
        assert len(held) == len(kept)
        if kept:
            assert (held.first(), held.last()) == (min(kept), max(kept))
            for percent in (50, 90, 95, 99):
                rank = max(1, math.ceil(percent * len(kept) / 100))
                assert nearest_rank(held, percent) == sorted(kept)[rank - 1]
    finally:
        SortedValues.LOAD = 512


@given(st.lists(values, max_size=200), st.data())
@settings(max_examples=200, deadline=None)
def test_an_exact_sum_is_what_fsum_gives_whatever_was_added_and_removed(
    items: list[float], data: st.DataObject
) -> None:
    total = ExactSum()
    for item in items:
        total.add(item)
    removed = data.draw(st.lists(st.sampled_from(items), max_size=len(items))) if items else []
    kept = list(items)
    for item in removed:
        if item in kept:
            total.add(-item)
            kept.remove(item)
    assert total.value() == math.fsum(kept)


def test_a_mean_back_to_one_sample_is_that_sample_exactly() -> None:
    window = Window("mean")
    window.add(1.0, 0.1)
    for i in range(1000):
        window.add(2.0 + i, 1e-3 * (i % 7) + 0.3)
    window.add(5000.0, 300.0)
    window.expire(4999.0)
    assert window.aggregate("mean", 60) == 300.0


def test_late_samples_are_inserted_in_time_order_and_expire_in_time_order() -> None:
    window = Window("max")
    times = list(range(100))
    random.Random(7).shuffle(times)
    for at in times:
        window.add(float(at), float(at))
    assert list(window.times) == [float(t) for t in range(100)]
    window.expire(49.0)
    assert window.aggregate("max", 60) == 99.0
    assert window.aggregate("count", 60) == 50.0
    window.expire(99.0)
    assert window.aggregate("max", 60) is None
    assert window.aggregate("sum", 60) == 0.0
