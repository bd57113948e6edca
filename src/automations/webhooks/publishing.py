"""Events of many webhook requests handed to the single writer together, as they become ready.

Each hand-over to the writer thread is a queue put that may wake it, and a future resolved back
on the event loop. The requests whose events become ready in the same turn of the event loop are
handed over as one batch instead, each request getting its own slice of the answer. But the
requests of one turn are not all held until its end: once ``FLUSH_EVENTS`` events wait they go at
once (``Writer.submit`` queues synchronously), so that the writer commits them while the event
loop renders the next ones (under a closed-loop load, e.g. 64 connections each waiting for its
answer, the whole turn's requests otherwise waited for one commit that started only after the
last of them was rendered, and the event loop for that commit). The writer commits what is queued
together as it would have anyway (group commit), so nothing is acknowledged earlier than its
commit; if a batch is refused (backpressure, draining), every request of it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from automations.domain import events

FLUSH_EVENTS = 16
"""Events waiting that are handed over without waiting for the end of the loop turn."""

Submit = Callable[[Sequence[events.Event], Sequence[Any] | None], asyncio.Future[list[bool]]]
"""``Writer.submit``: queues events for the next group commit, returns the commit's future."""

_Waiting = tuple[Sequence[events.Event], Sequence[Any] | None, asyncio.Future[list[bool]]]


class BatchingPublisher:
    """Collects the ``publish`` calls of one turn of the event loop into few hand-overs.

    Args:
        submit: The writer's ``submit``.
        flush_events: Events waiting that are handed over at once.
    """

    def __init__(self, submit: Submit, *, flush_events: int = FLUSH_EVENTS) -> None:
        self._submit = submit
        self._flush_events = flush_events
        self._waiting: list[_Waiting] = []
        self._events = 0
        self._scheduled = False

    async def __call__(
        self, batch: Sequence[events.Event], prepared: Sequence[Any] | None
    ) -> list[bool]:
        """Publishes ``batch`` with the others of this turn; returns its new/duplicate flags."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[bool]] = loop.create_future()
        self._waiting.append((batch, prepared, future))
        self._events += len(batch)
        if self._events >= self._flush_events:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush_at_turn_end)
        return await future

    def _flush_at_turn_end(self) -> None:
        self._scheduled = False
        self._flush()

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, []
        self._events = 0
        if not waiting:
            return
        combined: list[events.Event] = []
        rows: list[Any] | None = []
        for batch, prepared, _ in waiting:
            combined.extend(batch)
            if rows is not None and prepared is not None:
                rows.extend(prepared)
            else:
                rows = None
        try:
            committed = self._submit(combined, rows)
        except BaseException as exc:  # refused at once: every request of the batch is
            for _, _, future in waiting:
                if not future.done():
                    future.set_exception(exc)
            return
        committed.add_done_callback(lambda done: _answer(waiting, done))


def _answer(waiting: list[_Waiting], committed: asyncio.Future[list[bool]]) -> None:
    """Gives each request its slice of the flags, or the batch's failure."""
    if committed.cancelled():
        for _, _, future in waiting:
            future.cancel()
        return
    exc = committed.exception()
    offset = 0
    for batch, _, future in waiting:
        if not future.done():
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(committed.result()[offset : offset + len(batch)])
        offset += len(batch)
