"""Events of many webhook requests handed to the single writer together.

Each ``Writer.publish`` is a hand-over to the writer thread (a queue put that wakes it, a future
resolved back on the event loop). The requests whose events become ready in the same turn of the
event loop are published as one batch instead, and each gets its own slice of the answer: one
hand-over for many requests. The writer commits them in one transaction as it would have anyway
(group commit), so nothing is acknowledged earlier or later than it would be; if the batch is
refused (backpressure, draining), every request of it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from automations.domain import events
from automations.webhooks import receiver as receiver_


class BatchingPublisher:
    """Collects ``publish`` calls made in one turn of the event loop into one.

    Args:
        publish: The writer's ``publish``.
    """

    def __init__(self, publish: receiver_.Publish) -> None:
        self._publish = publish
        self._waiting: list[
            tuple[Sequence[events.Event], Sequence[Any] | None, asyncio.Future[list[bool]]]
        ] = []

    async def __call__(
        self, batch: Sequence[events.Event], prepared: Sequence[Any] | None
    ) -> list[bool]:
        """Publishes ``batch`` with the others of this turn; returns its new/duplicate flags."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[bool]] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._flush)
        self._waiting.append((batch, prepared, future))
        return await future

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, []
        asyncio.ensure_future(self._publish_all(waiting))

    async def _publish_all(
        self,
        waiting: list[
            tuple[Sequence[events.Event], Sequence[Any] | None, asyncio.Future[list[bool]]]
        ],
    ) -> None:
        combined: list[events.Event] = []
        rows: list[Any] | None = []
        for batch, prepared, _ in waiting:
            combined.extend(batch)
            if rows is not None and prepared is not None:
                rows.extend(prepared)
            else:
                rows = None
        try:
            flags = await self._publish(combined, rows)
        except BaseException as exc:
            for _, _, future in waiting:
                if not future.done():
                    future.set_exception(exc)
            return
        offset = 0
        for batch, _, future in waiting:
            if not future.done():
                future.set_result(flags[offset : offset + len(batch)])
            offset += len(batch)
