"""Ingest in cluster mode: accepted events go to the raw stream, acknowledged once every PubAck is in.

Any replica takes ``PublishEvents`` / ``StreamEvents`` (``api.event_service`` validates each event
as in single-node mode and hands the valid ones to :meth:`ClusterIngest.publish`, in place of the
writer's). The events are split by raw partition (their resource id, ``routing``), cut into
messages of at most 500 events with a deterministic ``Nats-Msg-Id`` (the partition and the sorted
event ids: a client retrying the same request, on this replica or another, is stored once), and
published; the call returns only when JetStream has stored every message, so an acknowledged event
is durable in the log. Which replica owns the partitions does not matter, so ingest stays
available on every live replica while partitions move. NATS not answering: ``UNAVAILABLE``.

``DUPLICATE`` is best effort: an id already in the event log (committed by a partition's owner),
or twice in the request, is answered DUPLICATE. For a request of up to
:data:`OVERLAPPED_LOOKUP_EVENTS` events the look-up of the log runs while the batch is published,
not before (it was a database round trip on every event's way to its owner): an id twice in the
request is published once, an id already logged is published again, and its owner skips it (the
event log's primary key is the dedup: only new rows are evaluated). A larger request is looked up
first and its logged ids are not published. A small request's look-up may run after the owner
committed this very publish: a logged row with the request's receive time is that, and is
answered ACCEPTED. An id published but not yet committed is published again and
answered ACCEPTED; its owner logs and evaluates it once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Container, Sequence
from typing import Any

import sqlalchemy as sa

from automations.cluster import log, log_encoding, log_streams, partition_commit, routing
from automations.domain import errors, events
from automations.store import database as database_
from automations.store import tables

OVERLAPPED_LOOKUP_EVENTS = 100
"""Requests of up to this many events are published while their ids are looked up; larger ones
after (their logged ids left out). Looked up later, a large request's ids are often found
committed by their owners already; W1 cost about 10 % more CPU per event that way."""
_SAME_RECEIPT = 2e-6
"""Seconds within which a logged receive time is this request's (the log keeps microseconds)."""


class ClusterIngest:
    """What ``EventService`` publishes to in cluster mode.

    Args:
        publisher: The log connection to publish on.
        database: The cluster's database (for the best-effort duplicate check).
        partitions: ``Q``.
    """

    def __init__(
        self, publisher: log.JetStreamLog, database: database_.Database, partitions: int
    ) -> None:
        self._log = publisher
        self._database = database
        self._partitions = partitions
        self._accepting = True

    def stop_accepting(self) -> None:
        """Refuses new batches (UNAVAILABLE) while the replica drains."""
        self._accepting = False

    async def publish(
        self, batch: Sequence[events.Event], prepared: Sequence[Any] | None = None
    ) -> list[bool]:
        """Publishes the new events of ``batch``; returns new (True) / duplicate per event.

        Args:
            batch: Validated events, each with its receive time.
            prepared: Unused (single-node mode's pre-encoded rows).

        Raises:
            errors.Unavailable: The replica is draining, or NATS did not store every message.
        """
        if not self._accepting:
            raise errors.Unavailable("this replica is not accepting events (draining)")
        if not batch:
            return []
        # a small request's look-up runs while it is published: it only decides the answer (an id
        # the log holds is answered DUPLICATE), and the owner skips a logged id anyway
        lookup = asyncio.ensure_future(
            asyncio.to_thread(self._logged, [event.id for event in batch])
        )
        try:
            skip: Container[str] = ()
            if len(batch) > OVERLAPPED_LOOKUP_EVENTS:
                skip = await lookup
            seen: set[str] = set()
            by_partition: dict[int, list[events.Event]] = {}
            for event in batch:
                if event.id not in seen and event.id not in skip:
                    seen.add(event.id)
                    partition = routing.event_partition(event, self._partitions)
                    by_partition.setdefault(partition, []).append(event)
            messages = [
                log.Batch(partition, payload, log_encoding.batch_id(partition, ids))
                for partition, part in sorted(by_partition.items())
                for ids, payload in partition_commit.encode_chunks(part)
            ]
            await self._log.publish(log_streams.Stage.RAW, messages)
            known = await lookup
        finally:
            if not lookup.done():
                lookup.cancel()
        flags: list[bool] = []
        seen.clear()
        for event in batch:
            logged = known.get(event.id)
            # logged with this request's receive time: it is this very publish, committed already
            earlier = logged is not None and abs(logged - event.received) > _SAME_RECEIPT
            flags.append(not earlier and event.id not in seen)
            seen.add(event.id)
        return flags

    def _logged(self, ids: list[str]) -> dict[str, float]:
        """The ids of ``ids`` already in the event log, with the receive time logged."""
        t = tables.events
        found: dict[str, float] = {}
        with self._database.read() as conn:
            for start in range(0, len(ids), 1000):
                found.update(
                    (str(row[0]), float(row[1]))
                    for row in conn.execute(
                        sa.select(t.c.id, t.c.received).where(t.c.id.in_(ids[start : start + 1000]))
                    )
                )
        return found
