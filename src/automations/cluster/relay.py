"""The relay: log messages committed in ``cluster_outbox`` go to JetStream, then leave the table.

A commit never publishes: what it makes for other partitions (forwarded events) and for the raw
stream (automation-made events) is written as rows in its own transaction
(``partition_commit``), so a replica that lost its partition, or crashed, cannot have published
anything its commit did not keep. After each commit (and every ``interval`` seconds, for rows
that other writes left, e.g. a previous owner's), the relay of each replica publishes the rows of
the partitions it owns, in row order, awaits every PubAck, and deletes them.

A crash between the PubAcks and the delete publishes the rows again (by this replica or the
partition's next owner): a forward keeps its ``Nats-Msg-Id`` (``f:<source>:<row id>``) and its
source sequence (the row id), so JetStream drops it within its duplicate window and the
destination's watermark skips it forever after; an automation-made event keeps its id, which the
event log's primary key dedups. Rows of one source partition are published in id order by one
relay at a time per replica; two replicas relaying one partition during a handoff may interleave,
which the watermark makes harmless (an older row arriving after a newer one is skipped as applied,
and it was: the newer one's replica published the older one first).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

from automations import metrics
from automations.cluster import (
    crash_points,
    log,
    log_errors,
    log_reader,
    log_streams,
    partition_store,
)
from automations.store import database as database_

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL = 0.5
"""Seconds between two relay rounds when no commit wakes it."""
ROUND_ROWS = 500
"""Rows one relay round reads and publishes at most (it goes on while rows are left)."""


class Relay:
    """Publishes the owned partitions' outbox rows (see the module docstring).

    Args:
        database: The cluster's database.
        publisher: The log to publish on.
        owned: The partitions this replica owns now.
        interval: Seconds between rounds without a wake-up.
    """

    def __init__(
        self,
        database: database_.Database,
        publisher: log.JetStreamLog,
        owned: Callable[[], Sequence[int]],
        *,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        self._database = database
        self._log = publisher
        self._owned = owned
        self._interval = interval
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failing = False

    def wake(self) -> None:
        """Asks for a round now (thread-safe)."""
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        """Relays until cancelled: a round per wake-up, at least every ``interval`` seconds."""
        self._loop = asyncio.get_running_loop()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                logger.exception("relaying log messages failed; trying again")
                await asyncio.sleep(self._interval)

    async def flush(self) -> int:
        """Relays every row of the owned partitions now; returns how many were relayed.

        A log that does not answer ends the round (the rows stay for the next one).
        """
        async with self._lock:
            total = 0
            while True:
                owned = list(self._owned())
                rows = await asyncio.to_thread(self._pending, owned)
                if not rows:
                    metrics.CLUSTER_RELAY_PENDING.set(0)
                    return total
                try:
                    done = await self._publish(rows)
                except log_errors.LogUnavailable as exc:
                    if not self._failing:
                        logger.warning(
                            "the log is unavailable; relaying later", extra={"error": str(exc)}
                        )
                    self._failing = True
                    metrics.CLUSTER_RELAY_PENDING.set(len(rows))
                    return total
                if self._failing:
                    logger.info("relaying again")
                    self._failing = False
                crash_points.reached("mid-relay")
                await asyncio.to_thread(self._delete, [row.id for row in rows])
                now = time.time()
                for row in rows:
                    metrics.CLUSTER_RELAY_LAG.observe(max(0.0, now - row.created))
                total += done
                if len(rows) < ROUND_ROWS:
                    metrics.CLUSTER_RELAY_PENDING.set(0)
                    return total

    async def _publish(self, rows: Sequence[partition_store.Message]) -> int:
        """Publishes rows, forwards then events, each stage in row order; returns how many."""
        forwards = [_batch(row) for row in rows if row.stage == partition_store.FWD]
        raws = [_batch(row) for row in rows if row.stage == partition_store.RAW]
        published = 0
        for stage, batches in ((log_streams.Stage.FWD, forwards), (log_streams.Stage.RAW, raws)):
            if not batches:
                continue
            try:
                await self._log.publish(stage, batches)
                published += len(batches)
            except log_errors.LogMessageTooLarge:
                published += await self._one_by_one(stage, batches)
        return published

    async def _one_by_one(self, stage: log_streams.Stage, batches: Sequence[log.Batch]) -> int:
        """Publishes batches one at a time, dropping (and logging) any the server refuses."""
        published = 0
        for batch in batches:
            try:
                await self._log.publish(stage, [batch])
                published += 1
            except log_errors.LogMessageTooLarge as exc:
                logger.error(
                    "log message dropped: larger than the NATS server accepts (raise its "
                    "max_payload)",
                    extra={"msg_id": batch.msg_id, "error": str(exc)},
                )
        return published

    def _pending(self, owned: list[int]) -> list[partition_store.Message]:
        with self._database.read() as conn:
            return partition_store.pending_messages(conn, owned, limit=ROUND_ROWS)

    def _delete(self, ids: list[int]) -> None:
        with self._database.write() as conn:
            partition_store.delete_messages(conn, ids)


def _batch(row: partition_store.Message) -> log.Batch:
    if row.stage == partition_store.FWD:
        return log.Batch(
            partition=row.destination,
            payload=row.payload,
            msg_id=f"f:{row.partition}:{row.id}",
            source=log_reader.Source(row.partition, row.id),
        )
    return log.Batch(partition=row.destination, payload=row.payload, msg_id=row.msg_id)
