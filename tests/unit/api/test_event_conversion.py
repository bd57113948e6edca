"""Event proto <-> domain event: a flow run completes, and its event crosses the API."""

from __future__ import annotations

import pytest

from automations.domain import errors, events, validation
from automations.v1 import event_pb2, event_service_pb2
from automations.wire import events as wire_events
from automations.wire import structs

NOW = 1_800_000_000.0


@pytest.fixture
def flow_run_completed() -> event_pb2.Event:
    message = event_pb2.Event(
        id="0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        event="prefect.flow-run.Completed",
        follows="0190a1b2-c3d4-7e5f-8a9b-000000000000",
    )
    message.occurred.FromMicroseconds(1_799_999_990_250_001)
    message.resource.labels.update(
        {"prefect.resource.id": "prefect.flow-run.1234", "prefect.resource.name": "nightly"}
    )
    message.related.add().labels.update(
        {"prefect.resource.id": "prefect.flow.77", "prefect.resource.role": "flow"}
    )
    message.related.add().labels.update(
        {"prefect.resource.id": "prefect.tag.prod", "prefect.resource.role": "tag"}
    )
    message.payload.update({"intended": {"start": "RUNNING", "end": "COMPLETED"}, "attempt": 2})
    return message


def test_every_field_reaches_the_domain_event(flow_run_completed: event_pb2.Event) -> None:
    event = wire_events.event_from_proto(flow_run_completed, received=NOW)
    assert event.id == "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
    assert event.event == "prefect.flow-run.Completed"
    assert event.occurred == pytest.approx(1_799_999_990.250001)
    assert event.resource == {
        "prefect.resource.id": "prefect.flow-run.1234",
        "prefect.resource.name": "nightly",
    }
    assert event.related == (
        {"prefect.resource.id": "prefect.flow.77", "prefect.resource.role": "flow"},
        {"prefect.resource.id": "prefect.tag.prod", "prefect.resource.role": "tag"},
    )
    assert event.payload == {"intended": {"start": "RUNNING", "end": "COMPLETED"}, "attempt": 2}
    assert event.follows == "0190a1b2-c3d4-7e5f-8a9b-000000000000"
    assert event.received == NOW
    assert event.resource_in_role("tag") == event.related[1]


def test_a_round_trip_gives_back_the_same_message(flow_run_completed: event_pb2.Event) -> None:
    for lazy in (True, False):
        event = wire_events.event_from_proto(flow_run_completed, received=NOW, lazy_payload=lazy)
        back = wire_events.event_to_proto(event)
        expected = event_pb2.Event()
        expected.CopyFrom(flow_run_completed)
        structs.set_timestamp(expected.received, NOW)
        assert back == expected


def test_the_lazy_payload_is_detached_from_the_request(flow_run_completed: event_pb2.Event) -> None:
    event = wire_events.event_from_proto(flow_run_completed, received=NOW)
    assert isinstance(event.payload, structs.StructMapping)
    flow_run_completed.payload.fields["attempt"].number_value = 99
    assert event.payload["attempt"] == 2


def test_an_eager_payload_is_a_plain_dict(flow_run_completed: event_pb2.Event) -> None:
    event = wire_events.event_from_proto(flow_run_completed, received=NOW, lazy_payload=False)
    assert type(event.payload) is dict


def test_an_unset_occurred_means_the_receive_time() -> None:
    message = event_pb2.Event(id="e1", event="x")
    message.resource.labels["prefect.resource.id"] = "r"
    event = wire_events.event_from_proto(message, received=NOW)
    assert event.occurred == NOW
    assert event.follows is None
    assert event.payload == {}
    assert event.related == ()


def test_an_event_never_received_has_no_received_time() -> None:
    event = events.Event(id="e1", event="x", occurred=5.0, resource={"prefect.resource.id": "r"})
    message = wire_events.event_to_proto(event)
    assert not message.HasField("received")
    assert message.follows == ""
    assert message.HasField("payload")


def test_an_event_without_a_resource_id_is_caught_by_validation() -> None:
    message = event_pb2.Event(id="e1", event="x")
    event = wire_events.event_from_proto(message, received=NOW)
    with pytest.raises(errors.InvalidArgument) as caught:
        validation.validate_event(event)
    assert caught.value.reason == "MISSING_RESOURCE_ID"


def test_a_related_resource_without_a_role_is_rejected_with_its_index() -> None:
    message = event_pb2.Event(id="e1", event="x")
    message.resource.labels["prefect.resource.id"] = "r"
    message.related.add().labels["prefect.resource.id"] = "other"
    with pytest.raises(errors.InvalidArgument) as caught:
        validation.validate_event(wire_events.event_from_proto(message, received=NOW))
    result = wire_events.rejected_event_result(4, "e1", caught.value)
    assert result == event_service_pb2.EventResult(
        index=4,
        event_id="e1",
        status=event_service_pb2.EVENT_STATUS_REJECTED,
        reason="MISSING_RESOURCE_ROLE",
        field="related[0]",
        message="must have a non-empty 'prefect.resource.role' label",
    )


def test_a_simulated_event_can_default_occurred_to_another_time() -> None:
    message = event_pb2.Event(id="e1", event="x")
    event = wire_events.event_from_proto(message, received=NOW, default_occurred=5.0)
    assert (event.occurred, event.received) == (5.0, NOW)


def test_time_from_proto_reads_seconds() -> None:
    assert structs.timestamp_to_seconds(structs.seconds_to_timestamp(12.5)) == 12.5
