"""The action outbox in cluster mode: each replica dispatches the invocations of its partitions.

An invocation is written with the partition whose commit planned it (``partition_commit``), and
the dispatcher (``dispatch.dispatcher``, unchanged) claims only those of the partitions its replica
owns (:meth:`ClusterOutbox.claim`); a partition's new owner makes the invocations that were in
flight at the previous owner due again (:meth:`ClusterOutbox.release`), and the executors dedupe
them on their idempotency key. Recording an outcome is as in single-node mode
(``pipeline.outbox_recording``) except that its lifecycle events (``...action.executed`` /
``.failed``, an ``emit-event``'s event) become raw-stream messages for the relay, with their
lineage, instead of being evaluated in the recording's transaction.

:class:`Gateway` is the dispatcher's ``OutboxStore``: writes run on the replica's writer thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from automations.actions import outcomes, planning
from automations.cluster import cluster_changes, crash_points, partition_commit, partition_store
from automations.dispatch import dispatcher
from automations.domain import invocations
from automations.pipeline import outbox_recording
from automations.pipeline import writer as writer_
from automations.store import database as database_
from automations.store import firings_repo, outbox_repo

if TYPE_CHECKING:
    from automations.cluster import replica_backend


class ClusterOutbox:
    """The writer's side of the outbox in cluster mode (writer thread only).

    Args:
        database: The cluster's database.
        changes: Applies pause- / resume-automation effects.
        partition_count: ``Q``.
        owned: The partitions this replica owns now.
        lease: Seconds a claimed invocation stays leased.
        clock: Wall clock, seconds since the epoch.
    """

    def __init__(
        self,
        database: database_.Database,
        changes: cluster_changes.ClusterChanges,
        partition_count: int,
        owned: Callable[[], Sequence[int]],
        *,
        lease: float,
        clock: Callable[[], float],
    ) -> None:
        self._database = database
        self._changes = changes
        self._partition_count = partition_count
        self._owned = owned
        self.lease = lease
        self._clock = clock

    def record(self, results: Sequence[outcomes.Outcome]) -> int:
        """Records the dispatcher's outcomes in one transaction; returns messages written.

        An outcome whose claim is no longer current (its lease ended, or its partition moved and
        the invocation was claimed again) is dropped: the newer attempt records its own.
        """
        with self._changes.transaction() as conn:
            now = self._clock()
            derived = outbox_recording.finish_current(conn, results, now, self._changes)
            messages = partition_commit.event_messages(
                derived, self._partition_count, relayed_by=None
            )
            partition_store.add_messages(conn, messages, now)
            partition_store.add_lineage(
                conn, ((c.event.id, c.depth, c.origin) for c in derived), now
            )
        return len(messages)

    def claim(self, limit: int) -> list[planning.Job]:
        """Claims due invocations of the owned partitions and loads their firings."""
        owned = list(self._owned())
        if not owned:
            return []
        now = self._clock()
        with self._database.write() as conn:
            claimed = outbox_repo.claim_due(conn, now, limit, lease=self.lease, partitions=owned)
            by_id = firings_repo.get_many(conn, {i.firing_id for i in claimed})
        return [planning.Job(invocation, by_id.get(invocation.firing_id)) for invocation in claimed]

    def release(self, partitions: Sequence[int]) -> int:
        """Makes the invocations of ``partitions`` that were in flight due now (a takeover)."""
        with self._database.write() as conn:
            return outbox_repo.release_running(conn, self._clock(), partitions=partitions)

    def redrive(self, invocation_id: str) -> invocations.Invocation:
        """Puts a failed or dead-lettered invocation back to pending, due now.

        Raises:
            errors.NotFound: Unknown invocation.
            errors.FailedPrecondition: It is neither failed nor dead-lettered.
        """
        with self._database.write() as conn:
            return outbox_repo.redrive_one(conn, invocation_id, now=self._clock())

    def stats(self) -> outbox_repo.Stats:
        """The open work of the owned partitions (read side, any thread)."""
        with self._database.read() as conn:
            return outbox_repo.stats(conn, partitions=list(self._owned()))


class Gateway(dispatcher.OutboxStore):
    """The dispatcher's outbox in cluster mode: writes on the replica's writer thread.

    Args:
        writer: The replica's writer.
        outbox: Its backend's outbox (statistics are read off the writer thread).
        on_messages: Called after an outcome recording wrote messages (wakes the relay).
    """

    def __init__(
        self,
        writer: writer_.Writer[replica_backend.ClusterBackend],
        outbox: ClusterOutbox,
        on_messages: Callable[[], None],
    ) -> None:
        self._writer = writer
        self._outbox = outbox
        self._on_messages = on_messages

    async def record(self, results: Sequence[outcomes.Outcome]) -> None:
        """Records outcomes in one writer transaction."""
        crash_points.reached("after-executor-call")
        written = await self._writer.call(lambda backend: backend.outbox.record(results))
        if written:
            self._on_messages()

    async def claim(self, limit: int) -> list[planning.Job]:
        """Claims due invocations of the owned partitions, with their firings."""
        jobs: list[planning.Job] = await self._writer.call(
            lambda backend: backend.outbox.claim(limit)
        )
        return jobs

    async def release_running(self) -> int:
        """Nothing at start: a partition's in-flight invocations are released when taken over."""
        return 0

    async def stats(self) -> dispatcher.OutboxStats:
        """The owned partitions' open work."""
        stats = await asyncio.to_thread(self._outbox.stats)
        return dispatcher.OutboxStats(stats.open, stats.oldest_created, stats.next_due)
