"""Batches of test events for the log's tests, and a reader's entries collected."""

from __future__ import annotations

import asyncio

from automations.cluster import log, log_encoding, log_errors, log_reader, log_streams
from tests import factories


def batch(partition: int, ids: list[str], **event_fields: object) -> log.Batch:
    """A batch of factory events with these ids (ids decide the message id)."""
    events = [factories.event(event_id, **event_fields) for event_id in ids]
    return log.Batch(
        partition, log_encoding.encode_events(events), log_encoding.batch_id(partition, ids)
    )


def numbered(partition: int, n: int, size: int = 3) -> log.Batch:
    """Batch number ``n`` of a partition: ``size`` events named after both."""
    return batch(partition, ids_of_numbered(partition, n, size))


def ids_of(entry: log_reader.LogEntry) -> list[str]:
    return [event.id for event in entry.events()]


async def take(
    reader: log_reader.PartitionReader, n: int, timeout: float = 20.0
) -> list[log_reader.LogEntry]:
    """The reader's next ``n`` entries; fails when they do not come within ``timeout``."""
    async with asyncio.timeout(timeout):
        return [await anext(reader) for _ in range(n)]


async def publish_until_stored(
    jetstream_log: log.JetStreamLog,
    stage: log_streams.Stage,
    batches: list[log.Batch],
    timeout: float = 30.0,
) -> list[log.Published]:
    """Publishes, retrying the same batches while the log is unavailable (a client's retry)."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                return await jetstream_log.publish(stage, batches, timeout=1.0)
            except log_errors.LogUnavailable:
                await asyncio.sleep(0.1)


def ids_of_numbered(partition: int, n: int, size: int = 3) -> list[str]:
    """The event ids of :func:`numbered`'s batch ``n``."""
    return [f"p{partition}-b{n}-e{i}" for i in range(size)]
