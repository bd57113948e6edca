"""An owner purges its partition up to its committed offset and nothing else; ``last_sequence``
measures how far the log is ahead of that offset."""

from __future__ import annotations

from automations.cluster import log, log_streams
from tests.integration.jetstream_log import batches


async def publish_rounds(jetstream_log: log.JetStreamLog, rounds: int) -> dict[int, list[int]]:
    sequences: dict[int, list[int]] = {0: [], 1: []}
    for n in range(rounds):
        for result in await jetstream_log.publish(
            log_streams.Stage.RAW, [batches.numbered(0, n), batches.numbered(1, n)]
        ):
            sequences[result.partition].append(result.sequence)
    return sequences


async def test_the_last_sequence_is_that_of_the_partitions_last_message(
    jetstream_log: log.JetStreamLog,
) -> None:
    assert await jetstream_log.last_sequence(log_streams.Stage.RAW, 0) == 0
    sequences = await publish_rounds(jetstream_log, 3)
    assert await jetstream_log.last_sequences(log_streams.Stage.RAW, [0, 1, 2]) == {
        0: sequences[0][-1],
        1: sequences[1][-1],
        2: 0,
    }
    assert await jetstream_log.last_sequence(log_streams.Stage.FWD, 0) == 0  # the other stream


async def test_a_purge_removes_the_partitions_messages_through_the_offset_only(
    jetstream_log: log.JetStreamLog,
) -> None:
    sequences = await publish_rounds(jetstream_log, 4)
    committed = sequences[0][1]  # partition 0 applied its first two batches

    await jetstream_log.purge(log_streams.Stage.RAW, 0, through=committed)

    reader = await jetstream_log.open_reader(log_streams.Stage.RAW, 0, start=1)
    left = await batches.take(reader, 2)
    assert await reader.next(timeout=0.3) is None
    await reader.close()
    assert [e.sequence for e in left] == sequences[0][2:]

    other = await jetstream_log.open_reader(log_streams.Stage.RAW, 1, start=1)
    untouched = await batches.take(other, 4)
    await other.close()
    assert [e.sequence for e in untouched] == sequences[1]
    assert await jetstream_log.last_sequence(log_streams.Stage.RAW, 0) == sequences[0][-1]


async def test_a_partition_purged_to_its_end_has_no_last_sequence(
    jetstream_log: log.JetStreamLog,
) -> None:
    sequences = await publish_rounds(jetstream_log, 2)
    await jetstream_log.purge(log_streams.Stage.RAW, 0, through=0)  # nothing committed yet: a no-op
    assert await jetstream_log.last_sequence(log_streams.Stage.RAW, 0) == sequences[0][-1]

    await jetstream_log.purge(log_streams.Stage.RAW, 0, through=sequences[0][-1])
    assert await jetstream_log.last_sequence(log_streams.Stage.RAW, 0) == 0
    assert await jetstream_log.last_sequence(log_streams.Stage.RAW, 1) == sequences[1][-1]
    # the stream's sequence goes on: a reader from the committed offset + 1 sees the next one
    reader = await jetstream_log.open_reader(log_streams.Stage.RAW, 0, start=sequences[0][-1] + 1)
    [published] = await jetstream_log.publish(log_streams.Stage.RAW, [batches.numbered(0, 9)])
    [entry] = await batches.take(reader, 1)
    await reader.close()
    assert entry.sequence == published.sequence > sequences[1][-1]
