"""The engine-internal actions: do-nothing, pause- / resume-automation and emit-event.

They need no executor. The dispatcher resolves them into an effect (an automation to enable or
disable, an event to publish) that the writer applies in the same transaction as the outcome, so
they happen exactly once without any idempotency bookkeeping.

Inference follows Prefect's ``server/events/actions.py``: with ``source: inferred`` the target
is the first resource of the triggering event — the primary one, then ``related`` in order — whose
id without its last dotted part is ``prefect.automation``; that first candidate decides (a bad id
there fails the action, it does not fall through to the next resource).
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Mapping
from typing import Any

from automations.domain import errors, events, validation

DO_NOTHING = "do-nothing"
PAUSE_AUTOMATION = "pause-automation"
RESUME_AUTOMATION = "resume-automation"
EMIT_EVENT = "emit-event"
TYPES = frozenset({DO_NOTHING, PAUSE_AUTOMATION, RESUME_AUTOMATION, EMIT_EVENT})
"""Action types the engine carries out itself."""

_AUTOMATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")


class ActionFailed(Exception):
    """A final failure of an internal action, with Prefect's reason text."""

    def __init__(self, reason: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = dict(details or {})


@dataclasses.dataclass(frozen=True, slots=True)
class Effect:
    """What an internal action does, applied by the writer with the outcome.

    Attributes:
        result: Recorded on the ``action.executed`` event.
        emitted: Events to publish.
        set_enabled: ``(automation_id, enabled)`` to apply.
    """

    result: Mapping[str, Any]
    emitted: tuple[events.Event, ...] = ()
    set_enabled: tuple[str, bool] | None = None


def infer_automation_id(parameters: Mapping[str, Any], event: events.Event | None) -> str:
    """The automation a pause- / resume-automation acts on.

    Raises:
        ActionFailed: Nothing selected, or nothing to infer from.
    """
    source = parameters.get("source") or "selected"
    if source == "selected":
        selected = parameters.get("automation_id")
        if not isinstance(selected, str) or not selected:
            raise ActionFailed("No automation selected: 'automation_id' is required")
        return selected
    if source != "inferred":
        raise ActionFailed(f"Unknown source {source!r}: expected 'selected' or 'inferred'")
    if event is None:
        raise ActionFailed("No event to infer the automation")
    for labels in (event.resource, *event.related):
        resource_id = labels.get(events.RESOURCE_ID, "")
        kind, _, last = resource_id.rpartition(".")
        if kind != "prefect.automation":
            continue
        if not _AUTOMATION_ID.match(last):
            raise ActionFailed("No automation could be inferred")
        return last
    raise ActionFailed("No automation could be inferred")


def emitted_event_id(idempotency_key: str) -> str:
    """The id of the event an ``emit-event`` invocation publishes: the same on every attempt."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"automations:emit-event:{idempotency_key}"))


def build_emitted_event(
    parameters: Mapping[str, Any], *, idempotency_key: str, now: float
) -> events.Event:
    """The event of an ``emit-event`` action from its rendered parameters.

    Raises:
        ActionFailed: The parameters do not make a valid event.
    """
    name = parameters.get("event")
    resource = parameters.get("resource")
    related = parameters.get("related") or []
    payload = parameters.get("payload") or {}
    if not isinstance(name, str) or not name:
        raise ActionFailed("emit-event: 'event' (the event name) is required")
    if not isinstance(resource, Mapping):
        raise ActionFailed("emit-event: 'resource' must be an object of labels")
    if not isinstance(related, list) or not all(isinstance(r, Mapping) for r in related):
        raise ActionFailed("emit-event: 'related' must be a list of label objects")
    if not isinstance(payload, Mapping):
        raise ActionFailed("emit-event: 'payload' must be an object")
    event = events.Event(
        id=emitted_event_id(idempotency_key),
        event=name,
        occurred=now,
        resource={str(k): str(v) for k, v in resource.items()},
        related=tuple({str(k): str(v) for k, v in r.items()} for r in related),
        payload=dict(payload),
        received=now,
    )
    try:
        validation.validate_event(event)
    except errors.InvalidArgument as exc:
        raise ActionFailed(f"emit-event: invalid event: {exc.message}") from None
    return event


def run(
    action_type: str,
    parameters: Mapping[str, Any],
    *,
    event: events.Event | None,
    idempotency_key: str,
    now: float,
) -> Effect:
    """Resolves one internal action into its effect.

    Raises:
        ActionFailed: A final failure (Prefect's reason).
    """
    if action_type == DO_NOTHING:
        return Effect(result={})
    if action_type in (PAUSE_AUTOMATION, RESUME_AUTOMATION):
        target = infer_automation_id(parameters, event)
        enabled = action_type == RESUME_AUTOMATION
        return Effect(result={"automation_id": target}, set_enabled=(target, enabled))
    if action_type == EMIT_EVENT:
        emitted = build_emitted_event(parameters, idempotency_key=idempotency_key, now=now)
        return Effect(result={"emitted_event": emitted.id}, emitted=(emitted,))
    raise ActionFailed(f"{action_type!r} is not an engine action")
