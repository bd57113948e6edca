"""A log batch gives back exactly the events written, with their receive times; bad bytes are refused."""

from __future__ import annotations

import pytest

from automations.cluster import log_encoding
from automations.domain import events
from automations.wire import events as wire_events
from automations.wire import structs
from tests import factories


def full_event(event_id: str, **extra: object) -> events.Event:
    return factories.event(
        event_id,
        name="prefect.flow-run.Crashed ✓",
        occurred=1_700_000_000.123456,
        resource_id="prefect.flow-run.ü-日本",
        payload={"text": "naïve ☃", "n": 3, "f": 2.5, "none": None, "list": [1, {"a": "b"}]},
        follows="parent-1",
        received=1_700_000_001.5,
        **extra,
    )


def as_message(event: events.Event) -> object:
    return wire_events.event_to_proto(event)


def test_domain_events_come_back_field_for_field() -> None:
    batch = [full_event("e1"), factories.event("e2", payload={}), full_event("e3")]
    decoded = log_encoding.decode_events(log_encoding.encode_events(batch))
    assert [as_message(e) for e in decoded] == [as_message(e) for e in batch]
    assert [e.received for e in decoded] == [e.received for e in batch]
    assert decoded[0].payload["text"] == "naïve ☃"
    assert decoded[1].follows is None


def test_client_messages_are_stamped_with_the_ingest_receive_time() -> None:
    sent = wire_events.event_to_proto(full_event("e1"))
    structs.set_timestamp(sent.received, 5.0)  # a client's own value, ignored on input
    no_occurred = wire_events.event_to_proto(factories.event("e2"))
    no_occurred.ClearField("occurred")
    no_occurred.ClearField("received")
    payload = log_encoding.encode_messages([sent, no_occurred], received=1_800_000_000.25)
    first, second = log_encoding.decode_events(payload)
    assert first.received == second.received == 1_800_000_000.25
    assert second.occurred == 1_800_000_000.25  # unset occurred: the receive time, as single-node
    assert structs.timestamp_to_seconds(sent.received) == 5.0  # the caller's message is untouched
    assert first.id == "e1" and first.event == "prefect.flow-run.Crashed ✓"


def test_messages_come_back_as_written() -> None:
    messages = [wire_events.event_to_proto(full_event(f"e{i}")) for i in range(3)]
    decoded = log_encoding.decode_messages(log_encoding.encode_messages(messages, received=7.5))
    for before, after in zip(messages, decoded, strict=True):
        structs.set_timestamp(before.received, 7.5)
        assert after == before


def test_an_empty_batch_is_just_the_version_byte() -> None:
    payload = log_encoding.encode_events([])
    assert payload == bytes([log_encoding.VERSION])
    assert log_encoding.decode_events(payload) == []


def test_an_event_without_a_receive_time_cannot_be_logged() -> None:
    with pytest.raises(log_encoding.LogEncodingError) as caught:
        log_encoding.encode_events([factories.event("e1", received=0.0)])
    assert caught.value.field == "received" and "e1" in caught.value.description
    with pytest.raises(log_encoding.LogEncodingError):
        log_encoding.encode_messages([], received=0.0)


@pytest.mark.parametrize(
    "payload",
    [b"", bytes([2]) + b"\x0a\x00", bytes([log_encoding.VERSION]) + b"\x0a\x05ab"],
    ids=["empty", "unknown version", "truncated"],
)
def test_bytes_that_are_not_a_batch_are_refused(payload: bytes) -> None:
    with pytest.raises(log_encoding.LogBatchCorrupt):
        log_encoding.decode_events(payload)


def test_a_batch_id_depends_on_the_partition_and_the_set_of_event_ids() -> None:
    same = log_encoding.batch_id(3, ["b", "a", "c"])
    assert same == log_encoding.batch_id(3, ["a", "b", "c"])
    assert same != log_encoding.batch_id(4, ["a", "b", "c"])
    assert same != log_encoding.batch_id(3, ["a", "b"])
    # ids are separated, not concatenated
    assert log_encoding.batch_id(3, ["ab", "c"]) != log_encoding.batch_id(3, ["a", "bc"])
