"""A ``SimulateAutomationRequest`` validated into domain terms."""

from __future__ import annotations

import dataclasses

from automations.domain import automations, errors, events, validation
from automations.v1 import automation_service_pb2
from automations.wire import automations as wire_automations
from automations.wire import events as wire_events
from automations.wire import structs


@dataclasses.dataclass(frozen=True, slots=True)
class Simulation:
    """A validated SimulateAutomation request in domain terms.

    Attributes:
        automation: The automation to run (id ``simulation``).
        steps: ``(at, event)`` pairs in delivery order; ``at`` in seconds since the epoch.
        until: The time the clock runs to, inclusive.
    """

    automation: automations.Automation
    steps: tuple[tuple[float, events.Event], ...]
    until: float


SIMULATION_AUTOMATION_ID = "simulation"
"""The id a simulated automation runs under."""


def simulation_from_proto(request: automation_service_pb2.SimulateAutomationRequest) -> Simulation:
    """Validates a SimulateAutomation request.

    Raises:
        errors.InvalidArgument: With the path of the first bad field: ``automation.trigger...``
            for the automation, ``events[3].event.resource`` for an event, ``events[3]`` for an
            out-of-order or late delivery time.
    """
    if not request.HasField("automation"):
        raise errors.InvalidArgument("automation", "is required", reason="INVALID_AUTOMATION")
    try:
        automation = wire_automations.automation_from_proto(
            request.automation, automation_id=SIMULATION_AUTOMATION_ID
        )
    except errors.InvalidArgument as exc:
        raise exc.under("automation") from None
    start = (
        structs.timestamp_to_seconds(request.start_time) if request.HasField("start_time") else 0.0
    )
    steps: list[tuple[float, events.Event]] = []
    previous = start
    for i, simulated in enumerate(request.events):
        field = f"events[{i}]"
        time_kind = simulated.WhichOneof("time")
        if time_kind == "offset":
            at = start + structs.duration_to_seconds(simulated.offset)
        elif time_kind == "deliver_time":
            at = structs.timestamp_to_seconds(simulated.deliver_time)
        else:
            raise errors.InvalidArgument(
                field, "must set offset or deliver_time", reason="INVALID_SIMULATION"
            )
        if at < previous:
            raise errors.InvalidArgument(
                field, "events must be in non-decreasing time order", reason="INVALID_SIMULATION"
            )
        previous = at
        event = wire_events.event_from_proto(simulated.event, received=at, lazy_payload=False)
        try:
            validation.validate_event(event)
        except errors.InvalidArgument as exc:
            raise exc.under(f"{field}.event") from None
        if event.occurred > at:
            raise errors.InvalidArgument(
                f"{field}.event.occurred",
                "must not be later than the event's delivery time",
                reason="INVALID_SIMULATION",
            )
        steps.append((at, event))
    until = (
        start + structs.duration_to_seconds(request.until)
        if request.HasField("until")
        else previous
    )
    if until < previous:
        raise errors.InvalidArgument(
            "until", "must not be before the last event", reason="INVALID_SIMULATION"
        )
    return Simulation(automation=automation, steps=tuple(steps), until=until)
