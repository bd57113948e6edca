"""The worker pool and the batching publisher hand many requests over at once, each its answer."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from automations.domain import errors, events
from automations.webhooks import deliveries, publishing, workers


async def test_the_pool_runs_jobs_off_the_loop_and_returns_each_result_or_error() -> None:
    pool = workers.WorkerPool(2)
    pool.start()
    loop_thread = threading.get_ident()

    def job(i: int) -> int:
        assert threading.get_ident() != loop_thread
        if i == 3:
            raise ValueError("three")
        return i * 2

    try:
        results = await asyncio.gather(
            *(pool.run(lambda i=i: job(i)) for i in range(200)), return_exceptions=True
        )
    finally:
        pool.stop()
    assert results[2] == 4 and results[199] == 398
    assert isinstance(results[3], ValueError)


def _event(i: int) -> events.Event:
    return events.Event(id=str(i), event="e", occurred=0.0, resource={"prefect.resource.id": "r"})


class FakeWriter:
    """``Writer.submit``: records each hand-over; its futures are resolved by the test."""

    def __init__(self, refuse: BaseException | None = None) -> None:
        self.refuse = refuse
        self.handed: list[tuple[list[str], asyncio.Future[list[bool]]]] = []

    def submit(self, batch: Sequence[events.Event], prepared: Any) -> asyncio.Future[list[bool]]:
        if self.refuse is not None:
            raise self.refuse
        future: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
        self.handed.append(([e.id for e in batch], future))
        return future

    def commit_all(self) -> None:
        for ids, future in self.handed:
            if not future.done():
                future.set_result([int(i) % 2 == 0 for i in ids])


async def _settle(writer: FakeWriter, *calls: Any) -> list[Any]:
    tasks = [asyncio.ensure_future(call) for call in calls]
    for _ in range(100):
        await asyncio.sleep(0)
        writer.commit_all()
        if all(task.done() for task in tasks):
            break
    return await asyncio.gather(*tasks, return_exceptions=True)


async def test_publishes_of_one_turn_are_one_hand_over_and_each_gets_its_flags() -> None:
    writer = FakeWriter()
    publisher = publishing.BatchingPublisher(writer.submit)
    results = await _settle(
        writer, publisher([_event(1), _event(2)], None), publisher([_event(4)], None)
    )
    assert [ids for ids, _ in writer.handed] == [["1", "2", "4"]]
    assert results == [[False, True], [True]]


async def test_a_refused_batch_refuses_every_request_in_it() -> None:
    publisher = publishing.BatchingPublisher(FakeWriter(errors.ResourceExhausted("full")).submit)
    results = await asyncio.gather(
        publisher([_event(1)], None), publisher([_event(2)], None), return_exceptions=True
    )
    assert all(isinstance(r, errors.ResourceExhausted) for r in results)


async def test_a_failed_commit_fails_every_request_of_its_batch_and_no_other() -> None:
    writer = FakeWriter()
    publisher = publishing.BatchingPublisher(writer.submit)
    calls = [asyncio.ensure_future(publisher([_event(i)], None)) for i in range(2)]
    while len(writer.handed) < 1:
        await asyncio.sleep(0)
    calls += [asyncio.ensure_future(publisher([_event(i)], None)) for i in range(2, 4)]
    while len(writer.handed) < 2:
        await asyncio.sleep(0)
    assert [ids for ids, _ in writer.handed] == [["0", "1"], ["2", "3"]]  # one per loop turn
    writer.handed[0][1].set_exception(errors.Unavailable("commit failed"))
    writer.commit_all()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert [type(r).__name__ for r in results] == ["Unavailable", "Unavailable", "list", "list"]


async def test_the_history_keeps_only_the_newest_of_each_webhook_until_written() -> None:
    written: list[Any] = []

    async def write(batch: Sequence[Any]) -> None:
        written.extend(batch)

    log = deliveries.DeliveryLog(write, keep=3)
    for i in range(10):
        log.add(deliveries.Pending("w", float(i), "POST", 204, 0.0, "", "", {}, ()))
    log.add(deliveries.Pending("v", 1.0, "GET", 404, 0.0, "x", "", {}, ()))
    await log.flush()
    assert sorted((d.webhook_id, d.received) for d in written) == [
        ("v", 1.0),
        ("w", 7.0),
        ("w", 8.0),
        ("w", 9.0),
    ]
    assert len({d.id for d in written}) == 4
    await log.flush()
    assert len(written) == 4


@pytest.mark.parametrize("rate", [0.0, -1.0])
def test_no_rate_limit_never_refuses(rate: float) -> None:
    from automations.webhooks import rate_limit

    limiter = rate_limit.RateLimiter(clock=lambda: 0.0)
    assert all(limiter.acquire("w", rate) == 0.0 for _ in range(1000))


class TooLargeWriter(FakeWriter):
    """Refuses, once committed, any hand-over holding the event ``big`` (``InvalidArgument``)."""

    def commit_all(self) -> None:
        for ids, future in self.handed:
            if not future.done():
                if "big" in ids:
                    future.set_exception(errors.InvalidArgument("event", "too large"))
                else:
                    future.set_result([True] * len(ids))


async def test_a_batch_refused_for_its_content_refuses_only_the_offending_request() -> None:
    writer = TooLargeWriter()
    publisher = publishing.BatchingPublisher(writer.submit)
    big = dataclasses.replace(_event(0), id="big")
    results = await _settle(
        writer,
        publisher([_event(1)], None),
        publisher([big, _event(2)], None),
        publisher([_event(3)], None),
    )
    assert results[0] == [True] and results[2] == [True]
    assert isinstance(results[1], errors.InvalidArgument)
    assert [ids for ids, _ in writer.handed] == [
        ["1", "big", "2", "3"],
        ["1"],
        ["big", "2"],
        ["3"],
    ]
