"""Converters between the ``automations.v1`` proto messages and the domain model.

Events convert field for field (times as float seconds since the epoch; the payload stays a
``Struct`` behind a lazy mapping until something reads it, see ``structs.StructMapping``).

Automations never go straight from proto to dataclass: an ``Automation`` message is first printed
as Prefect's automation JSON (``automation_to_prefect_json``), which
``prefect_json.parse_automation`` then validates, exactly as it validates an automation file. So
every client gets the same checks and the same field paths in errors, Prefect's:
``trigger.triggers[1].within``, ``actions[0].type``. The one exception is the display name, which
Prefect calls ``name`` and the proto ``display_name``; its errors name ``display_name``, because
``name`` is the resource name over gRPC.

Output goes from the domain model to proto directly (``automation_to_proto``, ``firing_to_proto``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from google.protobuf import field_mask_pb2, timestamp_pb2

from automations.domain import actions as actions_
from automations.domain import (
    automations,
    durations,
    errors,
    events,
    firings,
    invocations,
    prefect_json,
    validation,
)
from automations.domain import triggers as triggers_
from automations.v1 import (
    action_invocation_pb2,
    automation_pb2,
    automation_service_pb2,
    event_service_pb2,
    firing_pb2,
)
from automations.wire import events as wire_events
from automations.wire import structs

AUTOMATIONS_COLLECTION = "automations"
"""The collection id of automations: names are ``automations/{automation}``."""
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.~-]{0,127}$")

_POSTURE_TO_PROTO = {
    triggers_.Posture.REACTIVE: automation_pb2.POSTURE_REACTIVE,
    triggers_.Posture.PROACTIVE: automation_pb2.POSTURE_PROACTIVE,
}
_POSTURE_TO_PREFECT = {
    automation_pb2.POSTURE_UNSPECIFIED: "Reactive",
    automation_pb2.POSTURE_REACTIVE: "Reactive",
    automation_pb2.POSTURE_PROACTIVE: "Proactive",
}
_FIRING_POSTURE = {
    "Reactive": automation_pb2.POSTURE_REACTIVE,
    "Proactive": automation_pb2.POSTURE_PROACTIVE,
}
_TRIGGER_TYPE = {
    "event": firing_pb2.TRIGGER_TYPE_EVENT,
    "compound": firing_pb2.TRIGGER_TYPE_COMPOUND,
    "sequence": firing_pb2.TRIGGER_TYPE_SEQUENCE,
}

UPDATABLE_FIELDS: Mapping[str, str] = {
    "display_name": "name",
    "description": "description",
    "enabled": "enabled",
    "tags": "tags",
    "trigger": "trigger",
    "actions": "actions",
    "actions_on_trigger": "actions_on_trigger",
    "actions_on_resolve": "actions_on_resolve",
}
"""``update_mask`` paths (Automation field names) -> the Prefect JSON keys they replace."""


def _invalid(
    field: str, message: str, reason: str = "INVALID_AUTOMATION"
) -> errors.InvalidArgument:
    return errors.InvalidArgument(field, message, reason=reason)


# ------------------------------------------------------------------------------ resource names


def automation_name(automation_id: str) -> str:
    """Returns the resource name ``automations/{automation_id}``."""
    return f"{AUTOMATIONS_COLLECTION}/{automation_id}"


def automation_id_from_name(name: str, *, field: str = "name") -> str:
    """Returns the id in a resource name ``automations/{automation}``.

    Raises:
        errors.InvalidArgument: ``name`` is not an automation's resource name (reason
            ``INVALID_RESOURCE_NAME``).
    """
    collection, _, automation_id = name.partition("/")
    if collection != AUTOMATIONS_COLLECTION or not _ID_PATTERN.match(automation_id):
        raise _invalid(
            field,
            f"{name!r} is not an automation name (automations/{{automation}})",
            reason="INVALID_RESOURCE_NAME",
        )
    return automation_id


def firing_name(automation_id: str, firing_id: str) -> str:
    """Returns the resource name ``automations/{automation_id}/firings/{firing_id}``."""
    return f"{AUTOMATIONS_COLLECTION}/{automation_id}/firings/{firing_id}"


def etag(automation: automations.Automation) -> str:
    """Returns the automation's etag: its version, which every update increments."""
    return str(automation.version)


# ---------------------------------------------------------------------------------------- events


def time_from_proto(timestamp: timestamp_pb2.Timestamp) -> float:
    """Returns a ``Timestamp`` as float seconds since the epoch."""
    return structs.timestamp_to_seconds(timestamp)


def event_result(
    index: int, event_id: str, status: event_service_pb2.EventStatus.ValueType
) -> event_service_pb2.EventResult:
    """Returns the result of an accepted or duplicate event."""
    return event_service_pb2.EventResult(index=index, event_id=event_id, status=status)


def rejected_event_result(
    index: int, event_id: str, error: errors.InvalidArgument
) -> event_service_pb2.EventResult:
    """Returns the result of an event that failed validation with ``error``."""
    return event_service_pb2.EventResult(
        index=index,
        event_id=event_id,
        status=event_service_pb2.EVENT_STATUS_REJECTED,
        reason=error.reason,
        field=error.field,
        message=error.description,
    )


# ------------------------------------------------------------------- automation: proto -> JSON


def automation_to_prefect_json(
    message: automation_pb2.Automation, *, with_ids: bool = True
) -> dict[str, Any]:
    """Prints an ``Automation`` message as Prefect's automation JSON.

    The result is what ``prefect_json.parse_automation`` takes (so it is not validated here), and
    what the command line prints: Prefect's field names, durations in seconds, and with
    ``with_ids`` the output-only ``id``, ``created``, ``updated`` and trigger ``id`` when set.

    Raises:
        errors.InvalidArgument: A part of the message has no Prefect JSON form (a trigger with no
            kind, ``require_any: false``, an action whose parameters repeat ``type``).
    """
    out: dict[str, Any] = {}
    if with_ids and message.uid:
        out["id"] = message.uid
    out["name"] = message.display_name
    out["description"] = message.description
    out["enabled"] = message.enabled if message.HasField("enabled") else True
    out["tags"] = list(message.tags)
    if message.HasField("trigger"):
        out["trigger"] = trigger_to_prefect_json(message.trigger, with_ids=with_ids)
    out["actions"] = _actions_to_json(message.actions, "actions")
    out["actions_on_trigger"] = _actions_to_json(message.actions_on_trigger, "actions_on_trigger")
    out["actions_on_resolve"] = _actions_to_json(message.actions_on_resolve, "actions_on_resolve")
    if message.owner_resource:
        out["owner_resource"] = message.owner_resource
    if with_ids:
        if message.HasField("create_time"):
            out["created"] = _iso(structs.timestamp_to_seconds(message.create_time))
        if message.HasField("update_time"):
            out["updated"] = _iso(structs.timestamp_to_seconds(message.update_time))
    return out


def automation_to_json(message: automation_pb2.Automation) -> dict[str, Any]:
    """Same as ``automation_to_prefect_json(message)``: the JSON ``parse_automation`` takes."""
    return automation_to_prefect_json(message)


def trigger_to_prefect_json(
    message: automation_pb2.Trigger, *, field: str = "trigger", with_ids: bool = True
) -> dict[str, Any]:
    """Prints a ``Trigger`` message as Prefect's trigger JSON (``field`` names it in errors)."""
    kind = message.WhichOneof("kind")
    out: dict[str, Any]
    if kind == "event":
        out = _event_trigger_to_json(message.event, field)
    elif kind == "compound":
        compound = message.compound
        out = {"type": "compound"}
        require = compound.WhichOneof("require")
        if require == "require_count":
            out["require"] = compound.require_count
        elif require in ("require_any", "require_all"):
            if not getattr(compound, require):
                raise _invalid(f"{field}.require", f"{require} must be true when set")
            out["require"] = "any" if require == "require_any" else "all"
        else:
            out["require"] = "all"
        out["triggers"] = _children_to_json(compound.triggers, field, with_ids)
        out["within"] = _optional_seconds(compound, "within")
    elif kind == "sequence":
        sequence = message.sequence
        out = {
            "type": "sequence",
            "triggers": _children_to_json(sequence.triggers, field, with_ids),
            "within": _optional_seconds(sequence, "within"),
        }
    else:
        raise _invalid(field, "must set one of event, compound or sequence")
    if with_ids and message.id:
        out = {"type": out.pop("type"), "id": message.id, **out}
    return out


def _event_trigger_to_json(trigger: automation_pb2.EventTrigger, field: str) -> dict[str, Any]:
    posture = _POSTURE_TO_PREFECT.get(trigger.posture)
    if posture is None:
        raise _invalid(f"{field}.posture", f"unknown posture {trigger.posture}")
    related: Any
    if not trigger.match_related:
        related = {}
    elif len(trigger.match_related) == 1:
        related = _spec_to_json(trigger.match_related[0])
    else:
        related = [_spec_to_json(spec) for spec in trigger.match_related]
    return {
        "type": "event",
        "match": _spec_to_json(trigger.match),
        "match_related": related,
        "after": list(trigger.after),
        "expect": list(trigger.expect),
        "for_each": list(trigger.for_each),
        "posture": posture,
        "threshold": trigger.threshold if trigger.HasField("threshold") else 1,
        "within": (
            durations.format_seconds(structs.duration_to_seconds(trigger.within))
            if trigger.HasField("within")
            else 0
        ),
    }


def _spec_to_json(spec: automation_pb2.ResourceSpecification) -> dict[str, Any]:
    """Prints a spec as Prefect does: one pattern as a string, several as a list."""
    out: dict[str, Any] = {}
    for label, patterns in spec.labels.items():
        values = list(patterns.patterns)
        out[label] = values[0] if len(values) == 1 else values
    return out


def _children_to_json(
    children: Sequence[automation_pb2.Trigger], field: str, with_ids: bool
) -> list[dict[str, Any]]:
    return [
        trigger_to_prefect_json(child, field=f"{field}.triggers[{i}]", with_ids=with_ids)
        for i, child in enumerate(children)
    ]


def _optional_seconds(message: Any, name: str) -> int | float | None:
    if not message.HasField(name):
        return None
    return durations.format_seconds(structs.duration_to_seconds(getattr(message, name)))


def _actions_to_json(actions: Iterable[automation_pb2.Action], field: str) -> list[dict[str, Any]]:
    out = []
    for i, action in enumerate(actions):
        parameters = structs.struct_to_dict(action.parameters)
        if "type" in parameters:
            raise _invalid(f"{field}[{i}].parameters", "must not contain 'type': it is Action.type")
        out.append({"type": action.type, **parameters})
    return out


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).isoformat().replace("+00:00", "Z")


def automation_from_prefect_json(
    data: Mapping[str, Any],
    *,
    automation_id: str = "",
    created: float = 0.0,
    updated: float = 0.0,
) -> automations.Automation:
    """Validates Prefect's automation JSON into a domain automation (``parse_automation``).

    Errors about Prefect's ``name`` are reported as ``display_name``, its gRPC name.

    Raises:
        errors.InvalidArgument: With the Prefect-shaped path of the first bad field.
    """
    try:
        return prefect_json.parse_automation(
            data, automation_id=automation_id, created=created, updated=updated
        )
    except errors.InvalidArgument as exc:
        if exc.field == "name":
            raise errors.InvalidArgument(
                "display_name", exc.description, reason=exc.reason
            ) from None
        raise


def automation_from_proto(
    message: automation_pb2.Automation,
    *,
    automation_id: str = "",
    created: float = 0.0,
    updated: float = 0.0,
) -> automations.Automation:
    """Validates an ``Automation`` message into a domain automation.

    Output-only fields of the message are ignored; the caller passes the server's id and times.

    Raises:
        errors.InvalidArgument: With the Prefect-shaped path of the first bad field, e.g.
            ``trigger.triggers[1].within``.
    """
    data = automation_to_prefect_json(message, with_ids=False)
    return automation_from_prefect_json(
        data, automation_id=automation_id, created=created, updated=updated
    )


def apply_update(
    current: automations.Automation,
    patch: automation_pb2.Automation,
    update_mask: field_mask_pb2.FieldMask | None,
    *,
    updated: float,
) -> automations.Automation:
    """Returns ``current`` with the fields of ``update_mask`` taken from ``patch`` (AIP-134).

    An unset or empty mask means every field set in ``patch``; ``*`` means all updatable fields
    (Prefect's PUT). The result is validated as a whole; it keeps ``current``'s id, creation
    time and owner, gets ``updated`` as its update time and the next version. Triggers whose
    definition did not change keep their ids, hence their state.

    Raises:
        errors.InvalidArgument: A path cannot be updated (field ``update_mask``, reason
            ``INVALID_UPDATE_MASK``), or the result is not a valid automation.
    """
    paths = list(update_mask.paths) if update_mask is not None else []
    if not paths:
        paths = [path for path in UPDATABLE_FIELDS if _is_populated(patch, path)]
    elif "*" in paths:
        if paths != ["*"]:
            raise _invalid("update_mask", "'*' must be the only path", reason="INVALID_UPDATE_MASK")
        paths = list(UPDATABLE_FIELDS)
    for path in paths:
        if path not in UPDATABLE_FIELDS:
            raise _invalid(
                "update_mask",
                f"{path!r} cannot be updated (one of {', '.join(UPDATABLE_FIELDS)} or '*')",
                reason="INVALID_UPDATE_MASK",
            )
    data = prefect_json.dump_automation(current, with_ids=False)
    changes = automation_to_prefect_json(patch, with_ids=False)
    for path in paths:
        key = UPDATABLE_FIELDS[path]
        if key in changes:
            data[key] = changes[key]
        else:
            data.pop(key, None)
    result = automation_from_prefect_json(
        data, automation_id=current.id, created=current.created, updated=updated
    )
    return dataclasses.replace(
        result, owner_resource=current.owner_resource, version=current.version + 1
    )


def _is_populated(message: automation_pb2.Automation, path: str) -> bool:
    if path == "enabled":
        return message.HasField("enabled")
    if path == "trigger":
        return message.HasField("trigger")
    return bool(getattr(message, path))


# ------------------------------------------------------------------- automation: domain -> proto


def automation_to_proto(automation: automations.Automation) -> automation_pb2.Automation:
    """Returns the ``Automation`` message of a stored (or validated) domain automation."""
    message = automation_pb2.Automation(
        name=automation_name(automation.id) if automation.id else "",
        uid=automation.id,
        display_name=automation.name,
        description=automation.description,
        enabled=automation.enabled,
        tags=automation.tags,
        owner_resource=automation.owner_resource or "",
        etag=etag(automation),
    )
    message.trigger.CopyFrom(trigger_to_proto(automation.trigger))
    for target, items in (
        (message.actions, automation.actions),
        (message.actions_on_trigger, automation.actions_on_trigger),
        (message.actions_on_resolve, automation.actions_on_resolve),
    ):
        for action in items:
            target.append(action_to_proto(action))
    if automation.created:
        structs.set_timestamp(message.create_time, automation.created)
    if automation.updated:
        structs.set_timestamp(message.update_time, automation.updated)
    return message


def trigger_to_proto(trigger: triggers_.Trigger) -> automation_pb2.Trigger:
    """Returns the ``Trigger`` message of a domain trigger, ids included."""
    message = automation_pb2.Trigger(id=trigger.id)
    if isinstance(trigger, triggers_.EventTrigger):
        event = message.event
        _spec_to_proto(event.match, trigger.match)
        for spec in trigger.match_related:
            _spec_to_proto(event.match_related.add(), spec)
        event.after.extend(trigger.after)
        event.expect.extend(trigger.expect)
        event.for_each.extend(trigger.for_each)
        event.posture = _POSTURE_TO_PROTO[trigger.posture]
        event.threshold = trigger.threshold
        structs.set_duration(event.within, trigger.within)
        return message
    composite: Any = (
        message.compound if isinstance(trigger, triggers_.CompoundTrigger) else message.sequence
    )
    composite.SetInParent()
    for child in trigger.triggers:
        composite.triggers.append(trigger_to_proto(child))
    if trigger.within is not None:
        structs.set_duration(composite.within, trigger.within)
    if isinstance(trigger, triggers_.CompoundTrigger):
        if trigger.require == "any":
            composite.require_any = True
        elif trigger.require == "all":
            composite.require_all = True
        else:
            composite.require_count = int(trigger.require)
    return message


def _spec_to_proto(
    target: automation_pb2.ResourceSpecification, spec: triggers_.ResourceSpec
) -> None:
    target.SetInParent()
    for label, patterns in spec.items():
        target.labels[label].patterns.extend(patterns)


def action_to_proto(action: actions_.Action) -> automation_pb2.Action:
    """Returns the ``Action`` message of a domain action."""
    message = automation_pb2.Action(type=action.type)
    structs.fill_struct(message.parameters, action.parameters, field="parameters")
    return message


def automation_proto_from_prefect_json(data: Mapping[str, Any]) -> automation_pb2.Automation:
    """Returns the ``Automation`` message for Prefect's automation JSON (e.g. a file).

    The JSON is validated on the way (as the server will validate it again), so a bad file
    fails here with Prefect's field paths. An ``id`` in the JSON becomes ``name`` and ``uid``;
    ``created``/``updated`` are dropped (output only).

    Raises:
        errors.InvalidArgument: With the path of the first bad field.
    """
    raw_id = data.get("id") if isinstance(data, Mapping) else None
    automation = automation_from_prefect_json(data, automation_id=raw_id or "")
    message = automation_to_proto(automation)
    message.ClearField("etag")
    return message


# ---------------------------------------------------------------------------------------- firings


def firing_to_proto(firing: firings.Firing, *, stored: bool = True) -> firing_pb2.Firing:
    """Returns the ``Firing`` message of a domain firing, with its child firings.

    Args:
        firing: The firing.
        stored: Whether it is a stored top-level firing, which has a resource name; child and
            simulated firings have none.
    """
    message = firing_pb2.Firing(
        name=firing_name(firing.automation_id, firing.id) if stored else "",
        uid=firing.id,
        automation=automation_name(firing.automation_id) if firing.automation_id else "",
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


# ------------------------------------------------------------------------------------- simulation


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
        raise _invalid("automation", "is required")
    try:
        automation = automation_from_proto(
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
            raise _invalid(field, "must set offset or deliver_time", reason="INVALID_SIMULATION")
        if at < previous:
            raise _invalid(
                field, "events must be in non-decreasing time order", reason="INVALID_SIMULATION"
            )
        previous = at
        event = wire_events.event_from_proto(simulated.event, received=at, lazy_payload=False)
        try:
            validation.validate_event(event)
        except errors.InvalidArgument as exc:
            raise exc.under(f"{field}.event") from None
        if event.occurred > at:
            raise _invalid(
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
        raise _invalid("until", "must not be before the last event", reason="INVALID_SIMULATION")
    return Simulation(automation=automation, steps=tuple(steps), until=until)


# ------------------------------------------------------------------------------- invocations

INVOCATION_STATES = {
    invocations.InvocationStatus.PENDING: action_invocation_pb2.ActionInvocation.STATE_PENDING,
    invocations.InvocationStatus.RUNNING: action_invocation_pb2.ActionInvocation.STATE_RUNNING,
    invocations.InvocationStatus.SUCCEEDED: action_invocation_pb2.ActionInvocation.STATE_SUCCEEDED,
    invocations.InvocationStatus.FAILED: action_invocation_pb2.ActionInvocation.STATE_FAILED,
    invocations.InvocationStatus.DEAD_LETTER: action_invocation_pb2.ActionInvocation.STATE_DEAD_LETTERED,
}
"""Outbox status -> ``ActionInvocation.State``."""
INVOCATION_STATUSES = {state: status for status, state in INVOCATION_STATES.items()}
"""``ActionInvocation.State`` -> outbox status."""


def invocation_status_from_proto(
    state: action_invocation_pb2.ActionInvocation.State.ValueType, *, field: str
) -> str:
    """The outbox status of an ``ActionInvocation.State``."""
    status = INVOCATION_STATUSES.get(state)
    if status is None:
        raise _invalid(field, "must be a known state other than STATE_UNSPECIFIED")
    return status


def invocation_name(automation_id: str, invocation_id: str) -> str:
    """``automations/{automation}/invocations/{invocation}``."""
    return f"automations/{automation_id}/invocations/{invocation_id}"


def invocation_id_from_name(name: str, *, field: str = "name") -> str:
    """The invocation id of ``automations/{automation}/invocations/{invocation}``."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "automations" or parts[2] != "invocations" or not parts[3]:
        raise _invalid(field, "must be automations/{automation}/invocations/{invocation}")
    return parts[3]


def invocation_to_proto(item: invocations.Invocation) -> action_invocation_pb2.ActionInvocation:
    """The ``ActionInvocation`` message of an outbox row."""
    message = action_invocation_pb2.ActionInvocation(
        name=invocation_name(item.automation_id, item.id),
        uid=item.id,
        automation=automation_name(item.automation_id),
        firing_uid=item.firing_id,
        action_index=item.action_index,
        action_type=item.action_type,
        state=INVOCATION_STATES[item.status],
        attempts=item.attempts,
        last_error=item.last_error or "",
    )
    if item.status in (invocations.InvocationStatus.PENDING, invocations.InvocationStatus.RUNNING):
        structs.set_timestamp(message.next_attempt_time, item.next_attempt_at)
    if isinstance(item.result, Mapping):
        structs.fill_struct(message.result, item.result, field="result")
    structs.set_timestamp(message.create_time, item.created)
    structs.set_timestamp(message.update_time, item.updated)
    return message
