"""Automations between ``automation_pb2`` messages, Prefect's automation JSON and the domain model.

Automations never go straight from proto to dataclass: an ``Automation`` message is first printed
as Prefect's automation JSON (``automation_to_prefect_json``), which
``prefect_json.parse_automation`` then validates, exactly as it validates an automation file. So
every client gets the same checks and the same field paths in errors, Prefect's:
``trigger.triggers[1].within``, ``actions[0].type``. The one exception is the display name, which
Prefect calls ``name`` and the proto ``display_name``; its errors name ``display_name``, because
``name`` is the resource name over gRPC.

Output goes from the domain model to proto directly (``automation_to_proto``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from google.protobuf import field_mask_pb2

from automations.domain import actions as actions_
from automations.domain import automations, durations, errors, prefect_json
from automations.domain import triggers as triggers_
from automations.v1 import automation_pb2
from automations.wire import metric_triggers, names, structs


def _invalid(
    field: str, message: str, reason: str = "INVALID_AUTOMATION"
) -> errors.InvalidArgument:
    return errors.InvalidArgument(field, message, reason=reason)


_POSTURE_TO_PROTO = {
    triggers_.Posture.REACTIVE: automation_pb2.POSTURE_REACTIVE,
    triggers_.Posture.PROACTIVE: automation_pb2.POSTURE_PROACTIVE,
}

_POSTURE_TO_PREFECT = {
    automation_pb2.POSTURE_UNSPECIFIED: "Reactive",
    automation_pb2.POSTURE_REACTIVE: "Reactive",
    automation_pb2.POSTURE_PROACTIVE: "Proactive",
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
    elif kind == "metric":
        out = metric_triggers.metric_trigger_to_json(message.metric, field, _spec_to_json)
    else:
        raise _invalid(field, "must set one of event, compound, sequence or metric")
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


def automation_to_proto(automation: automations.Automation) -> automation_pb2.Automation:
    """Returns the ``Automation`` message of a stored (or validated) domain automation."""
    message = automation_pb2.Automation(
        name=names.automation_name(automation.id) if automation.id else "",
        uid=automation.id,
        display_name=automation.name,
        description=automation.description,
        enabled=automation.enabled,
        tags=automation.tags,
        owner_resource=automation.owner_resource or "",
        etag=names.etag(automation),
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
    if isinstance(trigger, triggers_.MetricTrigger):
        metric_triggers.metric_trigger_to_proto(trigger, message.metric, _spec_to_proto)
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
