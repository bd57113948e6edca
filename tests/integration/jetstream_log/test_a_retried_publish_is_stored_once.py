"""A batch published again with the same id (a retried request, here or on another replica) is
reported a duplicate of the first, with its sequence, and stored once."""

from __future__ import annotations

import asyncio

from automations.cluster import log, log_streams
from tests.integration.jetstream_log import batches
from tests.integration.jetstream_log.conftest import open_log


async def test_the_same_batch_twice_is_one_message(jetstream_log: log.JetStreamLog) -> None:
    first = await jetstream_log.publish(
        log_streams.Stage.RAW, [batches.numbered(1, 0), batches.numbered(2, 0)]
    )
    again = await jetstream_log.publish(
        log_streams.Stage.RAW,
        [batches.numbered(1, 0), batches.numbered(2, 0), batches.numbered(1, 1)],
    )

    assert [(p.partition, p.sequence, p.duplicate) for p in first] == [(1, 1, False), (2, 2, False)]
    assert [(p.partition, p.sequence, p.duplicate) for p in again] == [
        (1, 1, True),
        (2, 2, True),
        (1, 3, False),
    ]
    reader = await jetstream_log.open_reader(log_streams.Stage.RAW, 1, start=1)
    entries = await batches.take(reader, 2)
    assert await reader.next(timeout=0.5) is None
    await reader.close()
    assert [e.sequence for e in entries] == [1, 3]


async def test_the_same_events_in_another_order_are_a_duplicate(
    jetstream_log: log.JetStreamLog,
) -> None:
    [first] = await jetstream_log.publish(
        log_streams.Stage.RAW, [batches.batch(0, ["a", "b", "c"])]
    )
    [again] = await jetstream_log.publish(
        log_streams.Stage.RAW, [batches.batch(0, ["c", "a", "b"])]
    )
    [other] = await jetstream_log.publish(log_streams.Stage.RAW, [batches.batch(0, ["a", "b"])])
    assert (again.sequence, again.duplicate) == (first.sequence, True)
    assert not other.duplicate and other.sequence == first.sequence + 1


async def test_two_replicas_publishing_the_same_request_store_it_once(
    jetstream_log: log.JetStreamLog, nats_url: str
) -> None:
    other = await open_log(nats_url, jetstream_log.settings)
    try:
        request = [batches.numbered(p, 0) for p in range(8)]
        mine, theirs = await asyncio.gather(
            jetstream_log.publish(log_streams.Stage.RAW, request),
            other.publish(log_streams.Stage.RAW, request),
        )
    finally:
        await other.close()
    assert [p.sequence for p in mine] == [p.sequence for p in theirs]
    for a, b in zip(mine, theirs, strict=True):
        assert a.duplicate != b.duplicate  # exactly one of the two stored each batch
    last = await jetstream_log.last_sequences(log_streams.Stage.RAW, range(8))
    assert sorted(last.values()) == list(range(1, 9))
