"""A reader gets exactly its partition's messages from its start sequence on, in order, once each,
whatever the other partitions do, however slowly it is read, and until it is closed."""

from __future__ import annotations

import asyncio

import nats
import nats.js.api
import pytest

from automations.cluster import log, log_streams
from tests.integration.jetstream_log import batches

PARTITIONS = (0, 1, 2)


async def publish_interleaved(
    jetstream_log: log.JetStreamLog, rounds: int, first: int = 0
) -> dict[int, list[int]]:
    """Publishes ``rounds`` new batches per partition (numbered from ``first``), interleaved;
    returns each partition's sequences."""
    sequences: dict[int, list[int]] = {p: [] for p in PARTITIONS}
    for n in range(first, first + rounds):
        published = await jetstream_log.publish(
            log_streams.Stage.RAW, [batches.numbered(p, n) for p in PARTITIONS]
        )
        for result in published:
            sequences[result.partition].append(result.sequence)
    return sequences


async def test_a_reader_from_sequence_n_gets_exactly_its_messages_from_n_on(
    jetstream_log: log.JetStreamLog,
) -> None:
    sequences = await publish_interleaved(jetstream_log, rounds=10)
    # partition 1 from its 5th message; partition 0 from a sequence of partition 2's (between
    # two of its own); partition 2 from the start
    starts = {1: sequences[1][4], 0: sequences[2][3], 2: 1}
    readers = {
        p: await jetstream_log.open_reader(log_streams.Stage.RAW, p, start=start)
        for p, start in starts.items()
    }
    try:
        for p, reader in readers.items():
            wanted = [s for s in sequences[p] if s >= starts[p]]
            entries = await batches.take(reader, len(wanted))
            assert [e.sequence for e in entries] == wanted
            assert [e.partition for e in entries] == [p] * len(wanted)
            assert [e.pending for e in entries] == list(range(len(wanted) - 1, -1, -1))
            first_batch = sequences[p].index(wanted[0])
            assert batches.ids_of(entries[0]) == batches.ids_of_numbered(p, first_batch)
            assert await reader.next(timeout=0.3) is None  # nothing else, nothing twice
            assert reader.position == wanted[-1] + 1
    finally:
        for reader in readers.values():
            await reader.close()


async def test_a_reader_at_the_end_gets_what_is_published_later(
    jetstream_log: log.JetStreamLog,
) -> None:
    await publish_interleaved(jetstream_log, rounds=2)
    last = await jetstream_log.last_sequence(log_streams.Stage.RAW, 1)
    reader = await jetstream_log.open_reader(log_streams.Stage.RAW, 1, start=last + 1)
    try:
        assert await reader.next(timeout=0.3) is None
        later = await publish_interleaved(jetstream_log, rounds=3, first=2)
        entries = await batches.take(reader, 3)
        assert [e.sequence for e in entries] == later[1]
        assert [batches.ids_of(e) for e in entries] == [
            batches.ids_of_numbered(1, n) for n in (2, 3, 4)
        ]
    finally:
        await reader.close()


async def test_a_closed_reader_stops_its_iteration(jetstream_log: log.JetStreamLog) -> None:
    reader = await jetstream_log.open_reader(log_streams.Stage.RAW, 0, start=1)
    waiting = asyncio.create_task(anext(reader))
    await asyncio.sleep(0.1)
    await reader.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 5)
    with pytest.raises(StopAsyncIteration):
        await reader.next(timeout=0)
    assert [entry async for entry in reader] == []
    await reader.close()  # twice is fine


async def consumers(nats_url: str, stream: str) -> list[nats.js.api.ConsumerInfo]:
    client = await nats.connect(nats_url)
    try:
        return await client.jsm().consumers_info(stream)
    finally:
        await client.close()


async def test_a_reader_whose_consumer_vanishes_recreates_it_and_misses_nothing(
    jetstream_log: log.JetStreamLog, nats_url: str
) -> None:
    """An operator (or the server) deletes the consumer mid-read: the reader makes a new one from
    its position, and every message still arrives, in order, once."""
    stream = jetstream_log.settings.stream(log_streams.Stage.RAW)
    first = await jetstream_log.publish(
        log_streams.Stage.RAW, [batches.numbered(0, n) for n in range(5)]
    )
    reader = await jetstream_log.open_reader(log_streams.Stage.RAW, 0, start=1, heartbeat=0.5)
    try:
        assert [e.sequence for e in await batches.take(reader, 2)] == [1, 2]
        client = await nats.connect(nats_url)
        try:
            [consumer] = await client.jsm().consumers_info(stream)
            await client.jsm().delete_consumer(stream, consumer.name)
        finally:
            await client.close()
        later = await jetstream_log.publish(
            log_streams.Stage.RAW, [batches.numbered(0, n) for n in range(5, 8)]
        )
        rest = await batches.take(reader, 6)
        assert [e.sequence for e in rest] == [p.sequence for p in first[2:] + later]
        assert await reader.next(timeout=0.3) is None
        assert reader.recreated >= 1
    finally:
        await reader.close()
    assert await consumers(nats_url, stream) == []  # closing deleted the new one


async def test_a_slow_reader_holds_one_window_and_the_server_waits(
    jetstream_log: log.JetStreamLog, nats_url: str
) -> None:
    """The server sends a reader no more than one pull request's bytes ahead of what it handed
    over, however far behind it is (a push consumer's window grows to 32 MiB)."""
    stream = jetstream_log.settings.stream(log_streams.Stage.RAW)
    count, blob = 40, "x" * 100_000  # 4 MB in all, the window is ~1 MiB (max_payload)
    for n in range(count):
        await jetstream_log.publish(
            log_streams.Stage.RAW, [batches.batch(0, [f"e{n}"], payload={"blob": blob})]
        )
    reader = await jetstream_log.open_reader(log_streams.Stage.RAW, 0, start=1, buffer=1)
    try:
        await asyncio.sleep(1.0)  # not reading: the reader and the server fill what they may
        [consumer] = await consumers(nats_url, stream)
        assert consumer.delivered.stream_seq <= 13  # ~10 in the window, 1 buffered, 1 in hand
        seen = []
        async with asyncio.timeout(60):
            while len(seen) < count:
                entry = await anext(reader)
                seen.append((entry.sequence, batches.ids_of(entry)))
        assert seen == [(n + 1, [f"e{n}"]) for n in range(count)]
        assert reader.recreated == 0
    finally:
        await reader.close()


async def test_a_start_sequence_must_be_positive(jetstream_log: log.JetStreamLog) -> None:
    with pytest.raises(ValueError, match="start must be a stream sequence"):
        await jetstream_log.open_reader(log_streams.Stage.RAW, 0, start=0)
