"""Firings from the domain model to ``firing_pb2.Firing`` messages, and those to JSON."""

from __future__ import annotations

from typing import Any

from automations.domain import firings, prefect_json
from automations.v1 import automation_pb2, firing_pb2
from automations.wire import events as wire_events
from automations.wire import names, structs

_FIRING_POSTURE = {
    "Reactive": automation_pb2.POSTURE_REACTIVE,
    "Proactive": automation_pb2.POSTURE_PROACTIVE,
    "Metric": automation_pb2.POSTURE_METRIC,
}

_TRIGGER_TYPE = {
    "event": firing_pb2.TRIGGER_TYPE_EVENT,
    "compound": firing_pb2.TRIGGER_TYPE_COMPOUND,
    "sequence": firing_pb2.TRIGGER_TYPE_SEQUENCE,
    "metric": firing_pb2.TRIGGER_TYPE_METRIC,
}
_STATE = {
    firings.FiringState.TRIGGERED: firing_pb2.FIRING_STATE_TRIGGERED,
    firings.FiringState.RESOLVED: firing_pb2.FIRING_STATE_RESOLVED,
}
_STATE_NAMES = {value: state.value for state, value in _STATE.items()}
_TRIGGER_TYPE_NAMES = {value: name for name, value in _TRIGGER_TYPE.items()}
_POSTURE_NAMES = {value: name for name, value in _FIRING_POSTURE.items()}


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
        state=_STATE[firing.state],
    )
    if firing.triggering_value is not None:
        message.triggering_value = firing.triggering_value
    structs.set_timestamp(message.fire_time, firing.triggered)
    if firing.triggering_event is not None:
        message.triggering_event_id = firing.triggering_event.id
        message.triggering_event.CopyFrom(wire_events.event_to_proto(firing.triggering_event))
    for child in firing.child_firings:
        message.child_firings.append(firing_to_proto(child, stored=False))
    return message


def firing_to_json(message: firing_pb2.Firing) -> dict[str, Any]:
    """Returns a ``Firing`` message as the JSON a client shows (Prefect's names where it has them).

    Keys: ``id``, ``automation_id``, ``trigger_id``, ``trigger_type``, ``posture``,
    ``triggered`` (ISO 8601), ``triggering_event_id``, ``triggering_event`` (Prefect's event
    JSON, or None), ``triggering_labels``, ``child_firings`` (the same shape), ``state``
    (``Triggered`` or ``Resolved``) and ``triggering_value`` (a metric's value, or None).
    """
    event = None
    if message.HasField("triggering_event"):
        event = wire_events.event_message_to_json(message.triggering_event)
    return {
        "id": message.uid,
        "automation_id": message.automation.split("/", 1)[-1],
        "trigger_id": message.trigger_id,
        "trigger_type": _TRIGGER_TYPE_NAMES.get(message.trigger_type, ""),
        "posture": _POSTURE_NAMES.get(message.posture),
        "triggered": prefect_json.iso_time(structs.timestamp_to_seconds(message.fire_time)),
        "triggering_event_id": message.triggering_event_id or None,
        "triggering_event": event,
        "triggering_labels": dict(message.triggering_labels),
        "child_firings": [firing_to_json(child) for child in message.child_firings],
        "state": _STATE_NAMES.get(message.state, firings.FiringState.TRIGGERED.value),
        "triggering_value": (
            message.triggering_value if message.HasField("triggering_value") else None
        ),
    }
