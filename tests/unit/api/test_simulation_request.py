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
