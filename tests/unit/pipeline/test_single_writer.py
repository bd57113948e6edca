"""The single writer: group commit, ack after commit, backpressure, deadline wake-ups, recovery."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from automations.domain import errors, events
from automations.pipeline import writer
from tests.waiting import wait_until, wait_until_async


def ev(i: int) -> events.Event:
    return events.Event(id=f"e{i}", event="x", occurred=0.0, resource={"prefect.resource.id": "r"})


class FakeBackend(writer.Backend):
    def __init__(self, *, gate: threading.Event | None = None, fail: bool = False) -> None:
        self.groups: list[list[str]] = []
        self.seen: set[str] = set()
        self.gate = gate
        self.fail = fail
        self.due: float | None = None
        self.advanced: list[float] = []
        self.recovered = 0
        self.committing = threading.Event()
        """Set once the writer thread is inside a commit (blocked there while ``gate`` is not)."""

    def commit_events(self, batch: Sequence[events.Event], now: float) -> list[bool]:
        self.committing.set()
        if self.gate is not None:
            self.gate.wait(60)
        if self.fail:
            raise RuntimeError("disk full")
        self.groups.append([e.id for e in batch])
        flags = []
        for e in batch:
            flags.append(e.id not in self.seen)
            self.seen.add(e.id)
        return flags

    def run_call(self, fn: Callable[[Any], Any]) -> Any:
        return fn(self)

    def next_due(self) -> float | None:
        return self.due

    def advance(self, now: float) -> None:
        self.advanced.append(now)
        self.due = None

    def recover(self) -> None:
        self.recovered += 1


async def test_queued_batches_are_committed_together_and_each_caller_gets_its_flags() -> None:
    gate = threading.Event()
    backend = FakeBackend(gate=gate)
    w = writer.Writer(backend, group_seconds=3600)  # the gated first commit is not "slow"
    w.start()
    try:
        first = asyncio.ensure_future(w.publish([ev(0)]))
        await wait_until_async(backend.committing.is_set)  # blocked inside the first commit
        rest = [asyncio.ensure_future(w.publish([ev(i), ev(0)])) for i in range(1, 4)]
        await wait_until_async(lambda: w.pending_events == 7)
        gate.set()
        assert await first == [True]
        assert [await r for r in rest] == [[True, False]] * 3
        assert backend.groups[1] == ["e1", "e0", "e2", "e0", "e3", "e0"]  # one group commit
    finally:
        w.stop()


async def test_a_saturated_writer_refuses_instead_of_queueing() -> None:
    gate = threading.Event()
    backend = FakeBackend(gate=gate)
    w = writer.Writer(backend, max_pending_events=10)
    w.start()
    try:
        held = asyncio.ensure_future(w.publish([ev(i) for i in range(8)]))
        await wait_until_async(backend.committing.is_set)
        with pytest.raises(errors.ResourceExhausted):
            await w.publish([ev(i) for i in range(100, 105)])
        gate.set()
        assert len(await held) == 8
        assert w.pending_events == 0
    finally:
        w.stop()


async def test_a_failed_commit_is_not_acknowledged_and_state_is_reloaded() -> None:
    backend = FakeBackend(fail=True)
    w = writer.Writer(backend)
    w.start()
    try:
        with pytest.raises(errors.Unavailable):
            await w.publish([ev(1)])
        await wait_until_async(lambda: backend.recovered)
        assert backend.recovered == 1
    finally:
        w.stop()


def test_the_writer_wakes_at_the_next_deadline_without_polling() -> None:
    backend = FakeBackend()
    w = writer.Writer(backend)
    due = backend.due = time.time() + 0.2
    w.start()
    try:
        wait_until(lambda: backend.advanced, interval=0.01, what="advance()")
        assert due <= backend.advanced[0], "not woken before the deadline"
        assert backend.advanced[0] < due + 1.0, "woken at the deadline, not at some later poll"
    finally:
        w.stop()


async def test_draining_refuses_new_batches_but_commits_queued_ones() -> None:
    gate = threading.Event()
    backend = FakeBackend(gate=gate)
    w = writer.Writer(backend)
    w.start()
    queued = asyncio.ensure_future(w.publish([ev(1)]))
    await wait_until_async(backend.committing.is_set)
    w.stop_accepting()
    with pytest.raises(errors.Unavailable):
        await w.publish([ev(2)])
    gate.set()
    await asyncio.to_thread(w.stop)
    assert await queued == [True]


async def call_behind_queued_batches(group_seconds: float) -> list[str]:
    """Queues three batches and then a call while the writer is stuck in a first commit."""
    gate = threading.Event()
    backend = FakeBackend(gate=gate)
    w = writer.Writer(backend, max_group_events=1, group_seconds=group_seconds)
    w.start()
    try:
        first = asyncio.ensure_future(w.publish([ev(0)]))
        await wait_until_async(backend.committing.is_set)  # blocked inside the first commit
        queued = [asyncio.ensure_future(w.publish([ev(i)])) for i in range(1, 4)]
        await wait_until_async(lambda: w.pending_events == 4)
        call = asyncio.ensure_future(w.call(lambda b: [g[0] for g in b.groups]))
        await asyncio.sleep(0.1)  # the call waits at least this long (longer on a busy machine)
        gate.set()
        seen: list[str] = await call
        await first
        for q in queued:
            await q
        assert backend.groups == [["e0"], ["e1"], ["e2"], ["e3"]]
        return seen
    finally:
        w.stop()


async def test_a_call_that_waited_long_runs_before_queued_batches() -> None:
    # waited 0.1 s, more than half of group_seconds: right after the group being committed
    assert await call_behind_queued_batches(group_seconds=0.02) == ["e0"]


async def test_a_call_keeps_its_turn_behind_batches_queued_before_it() -> None:
    assert await call_behind_queued_batches(group_seconds=3600) == ["e0", "e1", "e2", "e3"]


async def test_calls_queued_at_stop_still_run() -> None:
    gate = threading.Event()
    backend = FakeBackend(gate=gate)
    w = writer.Writer(backend)
    w.start()
    held = asyncio.ensure_future(w.publish([ev(1)]))
    await wait_until_async(backend.committing.is_set)
    calls = [asyncio.ensure_future(w.call(lambda b, n=n: n)) for n in range(3)]
    await asyncio.sleep(0.05)
    stopping = asyncio.ensure_future(asyncio.to_thread(w.stop))
    gate.set()
    await stopping
    assert await held == [True]
    assert [await c for c in calls] == [0, 1, 2]


async def test_after_slow_commits_queued_batches_are_committed_in_smaller_groups() -> None:
    gate = threading.Event()
    backend = FakeBackend(gate=gate)
    w = writer.Writer(backend, group_seconds=0.05)
    w.start()
    try:
        first = asyncio.ensure_future(w.publish([ev(0)]))
        await wait_until_async(backend.committing.is_set)  # blocked inside the first commit
        queued = [asyncio.ensure_future(w.publish([ev(i), ev(i + 10)])) for i in range(1, 4)]
        await wait_until_async(lambda: w.pending_events == 7)
        # the first commit (one event) takes at least 0.2 s, longer on a busy machine: the
        # next groups take one batch each
        await asyncio.sleep(0.2)
        gate.set()
        await first
        for q in queued:
            await q
        assert backend.groups == [["e0"], ["e1", "e11"], ["e2", "e12"], ["e3", "e13"]]
    finally:
        w.stop()
