"""The dispatcher's view of the outbox: writes go through the single writer, reads do not."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from automations.actions import outcomes, planning
from automations.dispatch import dispatcher
from automations.pipeline import backend as backend_
from automations.pipeline import queries, writer


class OutboxGateway(dispatcher.OutboxStore):
    """Implements ``dispatcher.OutboxStore`` over the writer and the read side.

    Args:
        writer: The single writer (records, claims and releases run on it).
        reads: The read side (serves the statistics).
    """

    def __init__(
        self, writer: writer.Writer[backend_.EngineBackend], reads: queries.Queries
    ) -> None:
        self._writer = writer
        self._reads = reads

    async def record(self, results: Sequence[outcomes.Outcome]) -> None:
        """Records outcomes in one writer transaction."""
        await self._writer.call(lambda backend: backend.outbox.record(results))

    async def claim(self, limit: int) -> list[planning.Job]:
        """Claims due invocations with their firings."""
        jobs: list[planning.Job] = await self._writer.call(
            lambda backend: backend.outbox.claim(limit)
        )
        return jobs

    async def release_running(self) -> int:
        """Makes the previous run's in-flight invocations due."""
        released: int = await self._writer.call(lambda backend: backend.outbox.release_running())
        return released

    async def stats(self) -> dispatcher.OutboxStats:
        """The outbox's open work."""
        stats = await asyncio.to_thread(self._reads.outbox_stats)
        return dispatcher.OutboxStats(stats.open, stats.oldest_created, stats.next_due)
