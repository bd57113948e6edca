"""The publish lane: the front's events reach the writer, and the writer thread itself answers.

A real writer thread (over a fake backend) and a real socket pair between the two ends.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from automations.domain import errors, events
from automations.pipeline import writer
from automations.store import event_log
from automations.webhooks import lane
from tests.unit.pipeline.test_single_writer import FakeBackend, ev


class RowsBackend(FakeBackend):
    """Takes the rows the lane hands over, as the engine's backend does."""

    def __init__(self, *, gate: threading.Event | None = None) -> None:
        super().__init__(gate=gate)
        self.prepared: list[Any] = []

    def commit_events(
        self, batch: Sequence[events.Event], now: float, *, prepared: Any = None
    ) -> list[bool]:
        self.prepared.extend(prepared or [])
        return super().commit_events(batch, now)


class Ends:
    def __init__(self, backend: RowsBackend, **options: Any) -> None:
        self.writer = writer.Writer(backend, **options)
        self.replied_on: list[str] = []
        self.server: lane.LaneServer | None = None
        self.client = lane.LaneClient()

    def submit(self, batch: Any, rows: Any, reply: lane.Reply) -> None:
        def replying(flags: list[bool] | None, exc: BaseException | None) -> None:
            self.replied_on.append(threading.current_thread().name)
            reply(flags, exc)

        self.writer.submit_replying(batch, rows, replying)

    async def open(self) -> None:
        engine_end, front_end = socket.socketpair()
        self.server = lane.LaneServer(engine_end, submit=self.submit, decode_row=event_log.from_row)
        self.server.start()
        await self.client.open(front_end)

    def publish(self, *numbers: int) -> asyncio.Future[list[bool]]:
        return self.client.publish([event_log.to_row(ev(i)) for i in numbers])


@pytest.fixture
async def ends() -> AsyncIterator[Ends]:
    made = Ends(RowsBackend())
    made.writer.start()
    await made.open()
    yield made
    made.client.close()
    assert made.server is not None
    made.server.close()
    made.writer.stop()


async def test_events_sent_on_the_lane_are_committed_and_the_writer_thread_answers(
    ends: Ends,
) -> None:
    assert await asyncio.wait_for(ends.publish(1, 2), 10) == [True, True]
    assert await asyncio.wait_for(ends.publish(1, 3), 10) == [False, True]
    assert ends.replied_on == ["automations-writer", "automations-writer"]


async def test_the_writer_gets_the_rows_the_front_encoded(ends: Ends) -> None:
    await asyncio.wait_for(ends.publish(7), 10)
    backend = ends.writer._backend
    assert isinstance(backend, RowsBackend)
    assert backend.prepared == [event_log.to_row(ev(7))]


async def test_a_batch_the_writer_refuses_fails_with_the_same_error_in_the_front() -> None:
    gate = threading.Event()
    made = Ends(RowsBackend(gate=gate), max_pending_events=1)
    made.writer.start()
    await made.open()
    try:
        first = made.publish(1)  # waits at the gate: one event pending, the most allowed
        with pytest.raises(errors.ResourceExhausted):
            await asyncio.wait_for(made.publish(2), 10)
        gate.set()
        assert await asyncio.wait_for(first, 10) == [True]
    finally:
        gate.set()
        made.client.close()
        assert made.server is not None
        made.server.close()
        made.writer.stop()


async def test_publishes_waiting_fail_unavailable_when_the_engine_end_goes_away() -> None:
    gate = threading.Event()
    made = Ends(RowsBackend(gate=gate))
    made.writer.start()
    await made.open()
    try:
        waiting = made.publish(1)
        assert made.server is not None
        await asyncio.to_thread(made.server.close)
        with pytest.raises(errors.Unavailable):
            await asyncio.wait_for(waiting, 10)
        with pytest.raises(errors.Unavailable):
            await asyncio.wait_for(made.publish(2), 10)
    finally:
        gate.set()
        made.writer.stop()
