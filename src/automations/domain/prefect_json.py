"""Prefect's JSON for automations and events, parsed into (and printed from) the domain model.

This is the single place where an automation is validated: the gRPC layer turns an ``Automation``
proto into this same JSON shape first, so a file, a CLI call and a gRPC client all get the same
checks and the same field paths in their errors (``trigger.triggers[1].within``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from automations.domain import actions as actions_
from automations.domain import (
    automations,
    durations,
    events,
    metric_json,
    trigger_fields,
    triggers,
)

_EVENT_TRIGGER_KEYS = frozenset(
    {
        "type",
        "id",
        "match",
        "match_related",
        "after",
        "expect",
        "for_each",
        "posture",
        "threshold",
        "within",
    }
)
_COMPOSITE_KEYS = frozenset({"type", "id", "triggers", "require", "within"})


_invalid = trigger_fields.invalid
_join = trigger_fields.join
parse_resource_spec = trigger_fields.parse_resource_spec
dump_resource_spec = trigger_fields.dump_resource_spec
_string_list = trigger_fields.string_list
_trigger_digest = trigger_fields.trigger_digest


# --------------------------------------------------------------------------------------- triggers


def parse_trigger(
    data: object, field: str = "trigger", *, checked: bool = True
) -> triggers.Trigger:
    """Parses and validates a trigger; errors name the field path below ``field``.

    ``checked``: enforce the limits that apply on create and update only (a metric trigger's
    minimum ``range`` and ``firing_for``); stored automations are read back without them.

    Raises:
        errors.InvalidArgument: With the path of the first bad field.
    """
    if not isinstance(data, Mapping):
        raise _invalid(field, "must be an object")
    kind = data.get("type")
    if kind is None:
        # Prefect's discriminator: without a type, a "Metric" posture makes a metric trigger
        kind = "metric" if data.get("posture") == "Metric" else "event"
    if kind == "event":
        return _parse_event_trigger(data, field)
    if kind in ("compound", "sequence"):
        return _parse_composite(data, field, kind, checked)
    if kind == "metric":
        return metric_json.parse_metric_trigger(data, field, checked=checked)
    raise _invalid(
        _join(field, "type"),
        f"unknown trigger type {kind!r} (event, compound, sequence or metric)",
    )


def _parse_event_trigger(data: Mapping[str, Any], field: str) -> triggers.EventTrigger:
    unknown = sorted(set(data) - _EVENT_TRIGGER_KEYS)
    if unknown:
        raise _invalid(_join(field, unknown[0]), "unknown field of an event trigger")
    match = parse_resource_spec(data.get("match"), _join(field, "match"))
    match_related = trigger_fields.parse_match_related(
        data.get("match_related"), _join(field, "match_related")
    )
    after = _string_list(data.get("after"), _join(field, "after"))
    expect = _string_list(data.get("expect"), _join(field, "expect"))
    for_each = _string_list(data.get("for_each"), _join(field, "for_each"))
    for i, label in enumerate(for_each):
        if label.startswith("related:") and label.count(":") < 2:
            raise _invalid(f"{field}.for_each[{i}]", "must be a label or related:<role>:<label>")
    posture_raw = data.get("posture", "Reactive")
    try:
        posture = triggers.Posture(posture_raw)
    except ValueError:
        raise _invalid(_join(field, "posture"), "must be 'Reactive' or 'Proactive'") from None
    threshold = data.get("threshold", 1)
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
        raise _invalid(_join(field, "threshold"), "must be a whole number >= 0")
    within_field = _join(field, "within")
    if "within" in data and data["within"] is None:
        raise _invalid(within_field, "must be a duration, not null")
    within = durations.parse_duration(data.get("within", 0), within_field)
    if within < 0:
        raise _invalid(within_field, "must be >= 0")
    if posture is triggers.Posture.PROACTIVE:
        if within == 0:
            within = triggers.DEFAULT_PROACTIVE_WITHIN
        elif within < triggers.MIN_PROACTIVE_WITHIN:
            raise _invalid(
                within_field,
                "a proactive trigger's within must be at least 10 seconds (0 means 10 seconds)",
            )
    after_sorted = sorted(set(after))
    expect_sorted = sorted(set(expect))
    for_each_sorted = sorted(set(for_each))
    normalized: dict[str, Any] = {
        "type": "event",
        "match": {k: list(v) for k, v in sorted(match.items())},
        "match_related": [{k: list(v) for k, v in sorted(s.items())} for s in match_related],
        "after": after_sorted,
        "expect": expect_sorted,
        "for_each": for_each_sorted,
        "posture": posture.value,
        "threshold": threshold,
        "within": within,
    }
    return triggers.EventTrigger(
        id=_trigger_digest(normalized, field),
        match=match,
        match_related=match_related,
        after=tuple(after_sorted),
        expect=tuple(expect_sorted),
        for_each=tuple(for_each_sorted),
        posture=posture,
        threshold=threshold,
        within=within,
    )


def _parse_composite(
    data: Mapping[str, Any], field: str, kind: str, checked: bool
) -> triggers.CompoundTrigger | triggers.SequenceTrigger:
    allowed = _COMPOSITE_KEYS if kind == "compound" else _COMPOSITE_KEYS - {"require"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise _invalid(_join(field, unknown[0]), f"unknown field of a {kind} trigger")
    raw_children = data.get("triggers")
    children_field = _join(field, "triggers")
    if not isinstance(raw_children, list | tuple):
        raise _invalid(children_field, "must be a list of triggers")
    if not raw_children:
        raise _invalid(
            children_field,
            f"a {kind} trigger without child triggers can never fire",
            reason="TRIGGER_CAN_NEVER_FIRE",
        )
    children = tuple(
        parse_trigger(child, f"{children_field}[{i}]", checked=checked)
        for i, child in enumerate(raw_children)
    )
    within_field = _join(field, "within")
    raw_within = data.get("within")
    within = None if raw_within is None else durations.parse_duration(raw_within, within_field)
    if within is not None and within < 0:
        raise _invalid(within_field, "must be >= 0 or null")
    digest_input: dict[str, Any] = {
        "type": kind,
        "triggers": [c.id for c in children],
        "within": within,
    }
    if kind == "sequence":
        return triggers.SequenceTrigger(
            id=_trigger_digest(digest_input, field), triggers=children, within=within
        )
    require_field = _join(field, "require")
    require = data.get("require", "all")
    if isinstance(require, str) and require not in ("any", "all"):
        try:
            require = int(require)
        except ValueError:
            raise _invalid(require_field, "must be 'any', 'all' or a number") from None
    if isinstance(require, bool) or not isinstance(require, int | str):
        raise _invalid(require_field, "must be 'any', 'all' or a number")
    if isinstance(require, int) and not 1 <= require <= len(children):
        raise _invalid(
            require_field,
            f"must be between 1 and the number of child triggers ({len(children)})",
            reason="TRIGGER_CAN_NEVER_FIRE" if require > len(children) else "INVALID_AUTOMATION",
        )
    digest_input["require"] = require
    return triggers.CompoundTrigger(
        id=_trigger_digest(digest_input, field), triggers=children, require=require, within=within
    )


def dump_trigger(trigger: triggers.Trigger) -> dict[str, Any]:
    """Prints a trigger in Prefect's JSON shape (durations in seconds)."""
    if isinstance(trigger, triggers.MetricTrigger):
        return metric_json.dump_metric_trigger(trigger)
    if isinstance(trigger, triggers.EventTrigger):
        related = trigger_fields.dump_match_related(trigger.match_related)
        return {
            "type": "event",
            "id": trigger.id,
            "match": dump_resource_spec(trigger.match),
            "match_related": related,
            "after": list(trigger.after),
            "expect": list(trigger.expect),
            "for_each": list(trigger.for_each),
            "posture": trigger.posture.value,
            "threshold": trigger.threshold,
            "within": durations.format_seconds(trigger.within),
        }
    out: dict[str, Any] = {"type": trigger.type, "id": trigger.id}
    if isinstance(trigger, triggers.CompoundTrigger):
        out["require"] = trigger.require
    out["triggers"] = [dump_trigger(c) for c in trigger.triggers]
    out["within"] = None if trigger.within is None else durations.format_seconds(trigger.within)
    return out


# ---------------------------------------------------------------------------------------- actions


def parse_action(data: object, field: str) -> actions_.Action:
    """Parses one action: its ``type`` plus free-form parameters."""
    if not isinstance(data, Mapping):
        raise _invalid(field, "must be an object with a 'type'")
    kind = data.get("type")
    if not isinstance(kind, str) or not kind:
        raise _invalid(_join(field, "type"), "is required (e.g. 'call-webhook', 'do-nothing')")
    params = {k: v for k, v in data.items() if k != "type"}
    return actions_.Action(type=kind, parameters=params)


def dump_action(action: actions_.Action) -> dict[str, Any]:
    """Prints an action in Prefect's JSON shape."""
    return {"type": action.type, **action.parameters}


def _parse_actions(value: object, field: str) -> tuple[actions_.Action, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise _invalid(field, "must be a list of actions")
    return tuple(parse_action(a, f"{field}[{i}]") for i, a in enumerate(value))


# ------------------------------------------------------------------------------------ automations


def parse_automation(
    data: object,
    *,
    automation_id: str = "",
    created: float = 0.0,
    updated: float = 0.0,
    checked: bool = True,
) -> automations.Automation:
    """Parses and validates Prefect's automation JSON.

    Output-only fields in ``data`` (``id``, ``created``, ``updated``) are ignored; the caller
    passes the server's values. ``checked``: see :func:`parse_trigger` (False for stored rows).

    Raises:
        errors.InvalidArgument: With the path of the first bad field.
    """
    if not isinstance(data, Mapping):
        raise _invalid("", "an automation must be a JSON object")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _invalid("name", "is required and must be a non-empty string")
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise _invalid("description", "must be a string")
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise _invalid("enabled", "must be true or false")
    tags = _string_list(data.get("tags"), "tags")
    if "trigger" not in data:
        raise _invalid("trigger", "is required")
    trigger = parse_trigger(data["trigger"], "trigger", checked=checked)
    if "actions" not in data:
        raise _invalid("actions", 'is required (use [{"type": "do-nothing"}] for none)')
    owner = data.get("owner_resource")
    if owner is not None and not isinstance(owner, str):
        raise _invalid("owner_resource", "must be a string")
    return automations.Automation(
        id=automation_id,
        name=name,
        description=description,
        enabled=enabled,
        tags=tags,
        trigger=trigger,
        actions=_parse_actions(data.get("actions"), "actions"),
        actions_on_trigger=_parse_actions(data.get("actions_on_trigger"), "actions_on_trigger"),
        actions_on_resolve=_parse_actions(data.get("actions_on_resolve"), "actions_on_resolve"),
        owner_resource=owner,
        created=created,
        updated=updated,
    )


def dump_automation(automation: automations.Automation, *, with_ids: bool = True) -> dict[str, Any]:
    """Prints an automation in Prefect's JSON shape (plus ``id``, ``created``, ``updated``)."""
    out: dict[str, Any] = {}
    if with_ids:
        out["id"] = automation.id
    out.update(
        {
            "name": automation.name,
            "description": automation.description,
            "enabled": automation.enabled,
            "tags": list(automation.tags),
            "trigger": dump_trigger(automation.trigger),
            "actions": [dump_action(a) for a in automation.actions],
            "actions_on_trigger": [dump_action(a) for a in automation.actions_on_trigger],
            "actions_on_resolve": [dump_action(a) for a in automation.actions_on_resolve],
        }
    )
    if automation.owner_resource is not None:
        out["owner_resource"] = automation.owner_resource
    if with_ids:
        out["created"] = iso_time(automation.created)
        out["updated"] = iso_time(automation.updated)
    return out


def iso_time(seconds: float) -> str:
    """Formats seconds since the epoch as ISO 8601 UTC with a ``Z``."""
    import datetime as dt

    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).isoformat().replace("+00:00", "Z")


# ----------------------------------------------------------------------------------------- events


def parse_time(value: object, field: str) -> float:
    """Parses an event time: an ISO 8601 string or seconds since the epoch."""
    import datetime as dt

    if isinstance(value, bool):
        raise _invalid(field, "must be a time", reason="INVALID_EVENT")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            raise _invalid(
                field, f"{value!r} is not an ISO 8601 time", reason="INVALID_EVENT"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.timestamp()
    raise _invalid(field, "must be an ISO 8601 time", reason="INVALID_EVENT")


def parse_event(data: object, *, now: float, field: str = "") -> events.Event:
    """Parses Prefect's event JSON (``id``, ``event``, ``occurred``, ``resource``, ...).

    ``occurred`` defaults to ``now``. The result is not yet checked against the limits: see
    ``validation.validate_event``.
    """
    if not isinstance(data, Mapping):
        raise _invalid(field, "an event must be a JSON object", reason="INVALID_EVENT")
    event_id = data.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise _invalid(_join(field, "id"), "is required", reason="MISSING_EVENT_ID")
    name = data.get("event")
    if not isinstance(name, str):
        raise _invalid(_join(field, "event"), "is required", reason="MISSING_EVENT_NAME")
    occurred = (
        now
        if data.get("occurred") is None
        else parse_time(data["occurred"], _join(field, "occurred"))
    )
    resource = data.get("resource")
    if not isinstance(resource, Mapping):
        raise _invalid(_join(field, "resource"), "is required", reason="MISSING_RESOURCE_ID")
    related_raw = data.get("related") or []
    if not isinstance(related_raw, list | tuple) or not all(
        isinstance(r, Mapping) for r in related_raw
    ):
        raise _invalid(
            _join(field, "related"), "must be a list of label objects", reason="INVALID_EVENT"
        )
    payload = data.get("payload") or {}
    if not isinstance(payload, Mapping):
        raise _invalid(_join(field, "payload"), "must be an object", reason="INVALID_EVENT")
    follows = data.get("follows")
    if follows is not None and not isinstance(follows, str):
        raise _invalid(_join(field, "follows"), "must be an event id", reason="INVALID_EVENT")
    return events.Event(
        id=event_id,
        event=name,
        occurred=occurred,
        resource={str(k): str(v) for k, v in resource.items()},
        related=tuple({str(k): str(v) for k, v in r.items()} for r in related_raw),
        payload=dict(payload),
        follows=follows or None,
        received=now,
    )


def dump_event(event: events.Event) -> dict[str, Any]:
    """Prints an event as Prefect's JSON (times in ISO 8601 UTC)."""
    out: dict[str, Any] = {
        "id": event.id,
        "event": event.event,
        "occurred": iso_time(event.occurred),
        "resource": dict(event.resource),
        "related": [dict(r) for r in event.related],
        "payload": dict(event.payload),
    }
    if event.follows:
        out["follows"] = event.follows
    if event.received:
        out["received"] = iso_time(event.received)
    return out
