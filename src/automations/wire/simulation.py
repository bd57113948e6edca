"""A ``SimulateAutomationRequest`` validated into domain terms, within the server's bounds.

The server bounds what one request may ask for before anything runs: the events it carries
(``max_events``) and the span of simulated time from the clock's start to ``until``
(``max_span_seconds``); the error names the setting that raises the bound.
"""

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
        start: The clock's start: ``start_time``, else the first event's ``deliver_time``, else
            0 (the epoch).
    """

    automation: automations.Automation
    steps: tuple[tuple[float, events.Event], ...]
    until: float
    start: float


SIMULATION_AUTOMATION_ID = "simulation"
"""The id a simulated automation runs under."""


def simulation_from_proto(
    request: automation_service_pb2.SimulateAutomationRequest,
    *,
    max_events: int | None = None,
    max_span_seconds: float | None = None,
) -> Simulation:
    """Validates a SimulateAutomation request.

    Args:
        request: The request.
        max_events: The most events it may carry (None: any number).
        max_span_seconds: The longest span of simulated time, from the clock's start to
            ``until``, it may ask for (None: any).

    Raises:
        errors.InvalidArgument: With the path of the first bad field: ``automation.trigger...``
            for the automation, ``events[3].event.resource`` for an event, ``events[3]`` for an
            out-of-order or late delivery time; ``events`` for too many events
            (TOO_MANY_EVENTS), ``until`` for too long a span (SIMULATION_TOO_LONG).
    """
    if max_events is not None and len(request.events) > max_events:
        raise errors.InvalidArgument(
            "events",
            f"has {len(request.events)} events; a simulation takes at most {max_events} "
            "(the engine's simulation_max_events setting)",
            reason="TOO_MANY_EVENTS",
        )
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
    clock_start = (
        steps[0][0]
        if not request.HasField("start_time")
        and request.events
        and request.events[0].WhichOneof("time") == "deliver_time"
        else start
    )
    if max_span_seconds is not None and until - clock_start > max_span_seconds:
        raise errors.InvalidArgument(
            "until",
            f"asks for {until - clock_start:g} s of simulated time (from the clock's start to "
            f"until, or to the last event without it); a simulation covers at most "
            f"{max_span_seconds:g} s (the engine's simulation_max_span_seconds setting)",
            reason="SIMULATION_TOO_LONG",
        )
    return Simulation(automation=automation, steps=tuple(steps), until=until, start=clock_start)
