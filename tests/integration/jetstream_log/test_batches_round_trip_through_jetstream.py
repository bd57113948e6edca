"""A published batch is read back as written: every event field, forwarded sources, up to the size
the server accepts; a larger one is refused before anything is sent."""

from __future__ import annotations

import pytest

from automations.cluster import log, log_encoding, log_errors, log_reader, log_streams
from automations.wire import events as wire_events
from tests import factories
from tests.integration.jetstream_log import batches


async def test_every_event_field_comes_back(jetstream_log: log.JetStreamLog) -> None:
    written = [
        factories.event(
            "ü-1",
            name="prefect.flow-run.Crashed ✓",
            occurred=1_700_000_000.123456,
            resource_id="prefect.flow-run.日本",
            payload={"text": "naïve ☃", "n": 3, "f": 2.5, "none": None, "list": [1, {"a": "b"}]},
            follows="parent-1",
            received=1_700_000_001.5,
        ),
        factories.event("2", payload={}, received=1_700_000_002.0),
    ]
    payload = log_encoding.encode_events(written)
    [published] = await jetstream_log.publish(
        log_streams.Stage.RAW, [log.Batch(3, payload, log_encoding.batch_id(3, ["ü-1", "2"]))]
    )
    assert not published.duplicate and published.partition == 3

    reader = await jetstream_log.open_reader(log_streams.Stage.RAW, 3, start=1)
    [entry] = await batches.take(reader, 1)
    await reader.close()

    assert (entry.partition, entry.sequence, entry.source) == (3, published.sequence, None)
    assert entry.payload == payload
    read = entry.events()
    assert [wire_events.event_to_proto(e) for e in read] == [
        wire_events.event_to_proto(e) for e in written
    ]
    assert [e.received for e in read] == [1_700_000_001.5, 1_700_000_002.0]


async def test_a_forwarded_batch_carries_its_source(jetstream_log: log.JetStreamLog) -> None:
    forwarded = batches.numbered(5, 0)
    forwarded = log.Batch(5, forwarded.payload, "f:2:17:5", source=log_reader.Source(2, 17))
    await jetstream_log.publish(log_streams.Stage.FWD, [forwarded, batches.numbered(5, 1)])

    reader = await jetstream_log.open_reader(log_streams.Stage.FWD, 5, start=1)
    first, second = await batches.take(reader, 2)
    await reader.close()

    assert first.source == log_reader.Source(2, 17)
    assert second.source is None
    assert batches.ids_of(first) == ["p5-b0-e0", "p5-b0-e1", "p5-b0-e2"]


async def test_five_hundred_events_make_one_message(jetstream_log: log.JetStreamLog) -> None:
    ids = [f"event-{i:04d}" for i in range(500)]
    [published] = await jetstream_log.publish(log_streams.Stage.RAW, [batches.batch(0, ids)])
    assert published.sequence == 1

    reader = await jetstream_log.open_reader(log_streams.Stage.RAW, 0, start=1)
    [entry] = await batches.take(reader, 1)
    await reader.close()
    assert batches.ids_of(entry) == ids


def _headers_size(batch: log.Batch, stream: str) -> int:
    """What the server counts besides the payload: the header block nats-py writes."""
    lines = {"Nats-Msg-Id": batch.msg_id, "Nats-Expected-Stream": stream}
    return len("NATS/1.0\r\n") + sum(len(f"{k}: {v}\r\n") for k, v in lines.items()) + 2


def _event_batch_of_size(size: int) -> log.Batch:
    """One event whose encoded batch is exactly ``size`` bytes."""

    def encoded(blob: int) -> bytes:
        event = factories.event("big", payload={"blob": "é" * (blob // 2) + "x" * (blob % 2)})
        return log_encoding.encode_events([event])

    guess = size - 500
    payload = encoded(guess)
    payload = encoded(guess + size - len(payload))
    assert len(payload) == size  # lengths near 1 MB all take 3-byte varints: linear here
    return log.Batch(0, payload, log_encoding.batch_id(0, ["big"]))


async def test_a_batch_up_to_the_server_limit_is_stored_and_one_byte_more_is_refused(
    jetstream_log: log.JetStreamLog,
) -> None:
    limit = 1024 * 1024  # nats-server's default max_payload
    stream = jetstream_log.settings.stream(log_streams.Stage.RAW)
    probe = _event_batch_of_size(1000)
    largest = _event_batch_of_size(limit - _headers_size(probe, stream))
    assert jetstream_log.max_batch_bytes < len(largest.payload)

    too_large = _event_batch_of_size(len(largest.payload) + 1)
    with pytest.raises(log_errors.LogMessageTooLarge, match="at most 1048576"):
        await jetstream_log.publish(log_streams.Stage.RAW, [batches.numbered(0, 7), too_large])
    # nothing was sent: not even the small batch before it, and the connection is intact
    assert await jetstream_log.last_sequence(log_streams.Stage.RAW, 0) == 0

    [published] = await jetstream_log.publish(log_streams.Stage.RAW, [largest])
    reader = await jetstream_log.open_reader(log_streams.Stage.RAW, 0, start=1)
    [entry] = await batches.take(reader, 1)
    await reader.close()
    assert entry.sequence == published.sequence
    assert entry.payload == largest.payload
    assert len(entry.events()[0].payload["blob"]) > 500_000
