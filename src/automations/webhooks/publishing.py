"""Events of many webhook requests handed to the engine together: one message per loop turn.

In the front process (``front``) each hand-over is a message on the link to the engine (a write
that wakes the engine's event loop, which queues the events for the single writer and answers
once they are committed). The requests whose events become ready in the same turn of the event
loop are handed over as one batch, each request getting its own slice of the answer. Handing
them over earlier, every 16 events, cost more than it gained: at saturation the engine spent
48-50 us of CPU per request against 32-38 us with one message per turn (more messages, smaller
commits), for the same throughput. The writer commits what is queued together as it would have
anyway (group commit), so nothing is acknowledged earlier than its commit; if a batch is refused
(backpressure, draining), every request of it is, except when it is refused for its content: then
each request is handed over alone, and only the offending one is refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from automations.domain import errors, events

Submit = Callable[[Sequence[events.Event], Sequence[Any] | None], asyncio.Future[list[bool]]]
"""Hands events over for the next group commit at once; returns the commit's future."""

_Waiting = tuple[Sequence[events.Event], Sequence[Any] | None, asyncio.Future[list[bool]]]


class BatchingPublisher:
    """Collects the ``publish`` calls of one turn of the event loop into one hand-over.

    Args:
        submit: Hands a batch over (the link's ``publish`` request in the front process).
    """

    def __init__(self, submit: Submit) -> None:
        self._submit = submit
        self._waiting: list[_Waiting] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def __call__(
        self, batch: Sequence[events.Event], prepared: Sequence[Any] | None
    ) -> asyncio.Future[list[bool]]:
        """Publishes ``batch`` with the others of this turn; the future holds its flags.

        A plain function returning the future, not a coroutine: one level fewer for every
        request to pass through when it waits and when it wakes up. The event loop is looked up
        once, not per request: on Python 3.11 ``asyncio.get_running_loop()`` makes a ``getpid``
        system call each time (its check for a fork).
        """
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[list[bool]] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._flush)
        self._waiting.append((batch, prepared, future))
        return future

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, []
        if waiting:
            self._hand_over(waiting)

    def _hand_over(self, waiting: list[_Waiting]) -> None:
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
        committed.add_done_callback(lambda done: self._answer(waiting, done))

    def _answer(self, waiting: list[_Waiting], committed: asyncio.Future[list[bool]]) -> None:
        """Gives each request its slice of the flags, or the batch's failure.

        A batch of several requests refused for its content (``InvalidArgument``, e.g. an event
        too large for a cluster's log) is handed over again request by request: only the
        requests whose events are refused get the refusal.
        """
        if committed.cancelled():
            for _, _, future in waiting:
                future.cancel()
            return
        exc = committed.exception()
        if isinstance(exc, errors.InvalidArgument) and len(waiting) > 1:
            for one in waiting:
                self._hand_over([one])
            return
        offset = 0
        for batch, _, future in waiting:
            if not future.done():
                if exc is not None:
                    future.set_exception(exc)
                else:
                    future.set_result(committed.result()[offset : offset + len(batch)])
            offset += len(batch)
