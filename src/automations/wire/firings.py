"""Firings from the domain model to ``firing_pb2.Firing`` messages."""

from __future__ import annotations

from automations.domain import firings
from automations.v1 import automation_pb2, firing_pb2
from automations.wire import events as wire_events
from automations.wire import names, structs

_FIRING_POSTURE = {
    "Reactive": automation_pb2.POSTURE_REACTIVE,
    "Proactive": automation_pb2.POSTURE_PROACTIVE,
}

_TRIGGER_TYPE = {
    "event": firing_pb2.TRIGGER_TYPE_EVENT,
    "compound": firing_pb2.TRIGGER_TYPE_COMPOUND,
    "sequence": firing_pb2.TRIGGER_TYPE_SEQUENCE,
}


def firing_to_proto(firing: firings.Firing, *, stored: bool = True) -> firing_pb2.Firing:
    """Returns the ``Firing`` message of a domain firing, with its child firings.

    Args:
        firing: The firing.
        stored: Whether it is a stored top-level firing, which has a resource name; child and
            simulated firings have none.
    """
    message = firing_pb2.Firing(
        name=names.firing_name(firing.automation_id, firing.id) if stored else "",
        uid=firing.id,
        automation=names.automation_name(firing.automation_id) if firing.automation_id else "",
        trigger_id=firing.trigger_id,
        trigger_type=_TRIGGER_TYPE.get(firing.trigger_type, firing_pb2.TRIGGER_TYPE_UNSPECIFIED),
        posture=_FIRING_POSTURE.get(firing.posture or "", automation_pb2.POSTURE_UNSPECIFIED),
        triggering_labels=firing.triggering_labels,
    )
    structs.set_timestamp(message.fire_time, firing.triggered)
    if firing.triggering_event is not None:
        message.triggering_event_id = firing.triggering_event.id
        message.triggering_event.CopyFrom(wire_events.event_to_proto(firing.triggering_event))
    for child in firing.child_firings:
        message.child_firings.append(firing_to_proto(child, stored=False))
    return message
