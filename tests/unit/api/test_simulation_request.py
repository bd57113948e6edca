"""SimulateAutomation requests: a conformance scenario over gRPC, validated into domain steps."""

from __future__ import annotations

import pytest

from automations.domain import errors
from automations.v1 import automation_pb2, automation_service_pb2
from automations.wire import simulation as wire_simulation


def _request(*offsets: float) -> automation_service_pb2.SimulateAutomationRequest:
    request = automation_service_pb2.SimulateAutomationRequest()
    automation = request.automation
    automation.display_name = "reactive for each resource id"
    automation.actions.add(type="do-nothing")
    trigger = automation.trigger.event
    trigger.expect.append("deploy.failed")
    trigger.for_each.append("prefect.resource.id")
    trigger.posture = automation_pb2.POSTURE_REACTIVE
    trigger.threshold = 2
    trigger.within.seconds = 60
    for i, offset in enumerate(offsets):
        step = request.events.add()
        step.offset.FromNanoseconds(int(offset * 1e9))
        step.event.id = f"alpha-{i}"
        step.event.event = "deploy.failed"
        step.event.resource.labels["prefect.resource.id"] = "svc.alpha"
    return request


def test_steps_are_placed_on_the_virtual_clock() -> None:
    request = _request(0, 10)
    request.events[1].event.occurred.FromMilliseconds(9_500)
    request.until.seconds = 100
    simulation = wire_simulation.simulation_from_proto(request)
    assert simulation.automation.id == wire_simulation.SIMULATION_AUTOMATION_ID
    assert [(at, e.id, e.occurred, e.received) for at, e in simulation.steps] == [
        (0.0, "alpha-0", 0.0, 0.0),
        (10.0, "alpha-1", 9.5, 10.0),
    ]
    assert simulation.until == 100.0


def test_a_start_time_shifts_offsets_but_not_absolute_times() -> None:
    request = _request(5)
    request.start_time.FromSeconds(1_000)
    step = request.events.add()
    step.deliver_time.FromSeconds(1_010)
    step.event.CopyFrom(request.events[0].event)
    simulation = wire_simulation.simulation_from_proto(request)
    assert [at for at, _ in simulation.steps] == [1_005.0, 1_010.0]
    assert simulation.until == 1_010.0


def test_an_unset_until_ends_at_the_last_event() -> None:
    assert wire_simulation.simulation_from_proto(_request(0, 7.25)).until == 7.25


def test_events_out_of_order_are_rejected() -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        wire_simulation.simulation_from_proto(_request(10, 5))
    assert (caught.value.field, caught.value.reason) == ("events[1]", "INVALID_SIMULATION")


def test_an_event_without_a_time_is_rejected() -> None:
    request = _request(0)
    request.events[0].ClearField("offset")
    with pytest.raises(errors.InvalidArgument) as caught:
        wire_simulation.simulation_from_proto(request)
    assert caught.value.field == "events[0]"


def test_an_event_from_the_future_is_rejected() -> None:
    request = _request(10)
    request.events[0].event.occurred.FromSeconds(11)
    with pytest.raises(errors.InvalidArgument) as caught:
        wire_simulation.simulation_from_proto(request)
    assert caught.value.field == "events[0].event.occurred"


def test_an_invalid_event_is_named_by_its_position() -> None:
    request = _request(0, 1)
    request.events[1].event.resource.labels.clear()
    with pytest.raises(errors.InvalidArgument) as caught:
        wire_simulation.simulation_from_proto(request)
    assert (caught.value.field, caught.value.reason) == (
        "events[1].event.resource",
        "MISSING_RESOURCE_ID",
    )


def test_an_invalid_automation_is_named_under_automation() -> None:
    request = _request(0)
    request.automation.trigger.event.within.seconds = -1
    with pytest.raises(errors.InvalidArgument) as caught:
        wire_simulation.simulation_from_proto(request)
    assert caught.value.field == "automation.trigger.within"


def test_until_before_the_last_event_is_rejected() -> None:
    request = _request(0, 50)
    request.until.seconds = 10
    with pytest.raises(errors.InvalidArgument) as caught:
        wire_simulation.simulation_from_proto(request)
    assert caught.value.field == "until"


def test_a_request_without_an_automation_is_rejected() -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        wire_simulation.simulation_from_proto(automation_service_pb2.SimulateAutomationRequest())
    assert caught.value.field == "automation"


def test_the_clock_starts_at_start_time_else_at_an_absolute_first_event_else_at_zero() -> None:
    assert wire_simulation.simulation_from_proto(_request(5)).start == 0.0
    timed = _request(5)
    timed.start_time.FromSeconds(1_000)
    assert wire_simulation.simulation_from_proto(timed).start == 1_000.0
    absolute = _request(5)
    absolute.events[0].deliver_time.FromSeconds(2_000)
    assert wire_simulation.simulation_from_proto(absolute).start == 2_000.0


def test_more_events_than_allowed_are_refused_naming_events_and_the_setting() -> None:
    assert len(wire_simulation.simulation_from_proto(_request(0, 1), max_events=2).steps) == 2
    with pytest.raises(errors.InvalidArgument) as caught:
        wire_simulation.simulation_from_proto(_request(0, 1, 2), max_events=2)
    assert (caught.value.field, caught.value.reason) == ("events", "TOO_MANY_EVENTS")
    assert "has 3 events" in caught.value.description
    assert "simulation_max_events" in caught.value.description


def test_a_longer_span_than_allowed_is_refused_naming_until_and_the_setting() -> None:
    request = _request(0)
    request.until.seconds = 100
    assert wire_simulation.simulation_from_proto(request, max_span_seconds=100).until == 100
    request.until.seconds = 101
    with pytest.raises(errors.InvalidArgument) as caught:
        wire_simulation.simulation_from_proto(request, max_span_seconds=100)
    assert (caught.value.field, caught.value.reason) == ("until", "SIMULATION_TOO_LONG")
    assert "asks for 101 s" in caught.value.description
    assert "simulation_max_span_seconds" in caught.value.description


def test_the_span_runs_from_the_clocks_start_to_the_last_event_without_until() -> None:
    far = _request(0, 10_000)
    with pytest.raises(errors.InvalidArgument) as caught:
        wire_simulation.simulation_from_proto(far, max_span_seconds=5_000)
    assert caught.value.reason == "SIMULATION_TOO_LONG"
    # absolute times far from the epoch: the span starts at the first event, not at 0
    late = _request(0, 0)
    late.events[0].deliver_time.FromSeconds(1_900_000_000)
    late.events[1].deliver_time.FromSeconds(1_900_000_060)
    late.until.seconds = 1_900_000_060
    assert wire_simulation.simulation_from_proto(late, max_span_seconds=60).start == 1.9e9
