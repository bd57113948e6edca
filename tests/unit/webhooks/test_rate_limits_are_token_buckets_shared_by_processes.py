"""Per-webhook rate limits: token buckets, in memory or in a table the webhook processes share."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator

import pytest

from automations.domain import webhooks
from automations.webhooks import rate_limit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def table() -> Iterator[rate_limit.SharedBuckets]:
    buckets = rate_limit.SharedBuckets.create(slots=64)
    yield buckets
    buckets.close()


def _hook(hook_id: str, rate: float) -> webhooks.Webhook:
    return webhooks.Webhook(id=hook_id, name=hook_id, template="{}", slug=hook_id, rate_limit=rate)


@pytest.mark.parametrize("shared", [False, True])
def test_a_burst_of_the_rate_then_one_token_per_period(
    shared: bool, table: rate_limit.SharedBuckets
) -> None:
    clock = Clock()
    limiter = rate_limit.RateLimiter(clock, shared=table if shared else None)
    limiter.use_slots({"h": 3})
    assert [limiter.acquire("h", 4.0) for _ in range(4)] == [0.0] * 4
    assert limiter.acquire("h", 4.0) == pytest.approx(0.25)
    clock.now += 0.25
    assert limiter.acquire("h", 4.0) == 0.0
    assert limiter.acquire("h", 4.0) > 0
    clock.now += 10  # refilled up to the burst, not beyond
    assert [limiter.acquire("h", 4.0) for _ in range(5)].count(0.0) == 4


def test_a_rate_below_one_allows_one_request_at_once(table: rate_limit.SharedBuckets) -> None:
    clock = Clock()
    limiter = rate_limit.RateLimiter(clock, shared=table)
    limiter.use_slots({"h": 0})
    assert limiter.acquire("h", 0.5) == 0.0
    assert limiter.acquire("h", 0.5) == pytest.approx(2.0)
    assert rate_limit.retry_after(limiter.acquire("h", 0.5)) == "2"


def test_processes_mapping_one_table_draw_from_one_bucket(table: rate_limit.SharedBuckets) -> None:
    clock = Clock()
    first = rate_limit.RateLimiter(clock, shared=table)
    second = rate_limit.RateLimiter(clock, shared=rate_limit.SharedBuckets(table.fd, table.slots))
    for limiter in (first, second):
        limiter.use_slots({"h": 5})
    taken = [limiter.acquire("h", 3.0) for limiter in (first, second, first, second)]
    assert taken.count(0.0) == 3


def _take_in_a_child(
    fd: int, slots: int, now: float, results: multiprocessing.Queue[float]
) -> None:
    buckets = rate_limit.SharedBuckets(fd, slots)
    for _ in range(10):
        results.put(buckets.acquire(1, 5.0, now))


def test_another_process_sees_the_tokens_taken_here(table: rate_limit.SharedBuckets) -> None:
    assert table.acquire(1, 5.0, 1000.0) == 0.0
    assert table.acquire(1, 5.0, 1000.0) == 0.0
    context = multiprocessing.get_context("fork")
    results: multiprocessing.Queue[float] = context.Queue()
    child = context.Process(target=_take_in_a_child, args=(table.fd, table.slots, 1000.0, results))
    child.start()
    child.join(30)
    taken = [results.get(timeout=5) for _ in range(10)]
    assert taken.count(0.0) == 3  # 5 at once, 2 of them taken here


def test_the_engine_keeps_a_webhooks_slot_and_resets_a_slot_it_gives_again(
    table: rate_limit.SharedBuckets,
) -> None:
    slots = rate_limit.Slots(table)
    given = slots.assign([_hook("a", 1.0), _hook("b", 0.0), _hook("c", 2.0)])
    assert set(given) == {"a", "c"}, "only rate-limited webhooks take a slot"
    table.acquire(given["a"], 1.0, 1000.0)
    assert table.acquire(given["a"], 1.0, 1000.0) > 0
    again = slots.assign([_hook("a", 3.0), _hook("c", 2.0), _hook("d", 1.0)])
    assert again["a"] == given["a"] and again["c"] == given["c"]
    assert table.acquire(again["a"], 1.0, 1000.0) > 0, "an update keeps the bucket"
    assert again["d"] not in given.values()
    assert table.acquire(again["d"], 1.0, 1000.0) == 0.0


def test_a_full_table_is_handed_out_again_with_full_buckets() -> None:
    small = rate_limit.SharedBuckets.create(slots=2)
    try:
        slots = rate_limit.Slots(small)
        first = slots.assign([_hook("a", 1.0), _hook("b", 1.0)])
        for slot in first.values():
            small.acquire(slot, 1.0, 1000.0)
        second = slots.assign([_hook("b", 1.0), _hook("c", 1.0)])
        assert sorted(second.values()) == [0, 1]
        assert all(small.acquire(slot, 1.0, 1000.0) == 0.0 for slot in second.values())
        crowded = slots.assign([_hook(name, 1.0) for name in "xyz"])
        assert len(crowded) == 2, "beyond the table, a webhook is limited in each process alone"
    finally:
        small.close()
