"""The automation's own events, with Prefect's names, resources and payloads.

Every firing publishes ``prefect.automation.triggered`` (a Resolved firing
``prefect.automation.resolved``, with the same payload and resources); every action invocation
publishes
``prefect.automation.action.triggered`` when it is planned and then ``.executed`` or ``.failed``
when it is finished; creating, updating and deleting an automation publish
``prefect.automation.created`` / ``.updated`` / ``.deleted``. They enter the pipeline like any
other event, so an automation can watch another's firings and failures.

Resources and payloads follow Prefect's ``server/events/actions.py`` and ``models/automations.py``
(docs/actions.md lists them): the resource is ``prefect.automation.<id>`` with its name (and
``prefect.posture`` / ``prefect.trigger-type``); ``action.triggered`` follows the triggering event
when the two are less than five minutes apart; ``.executed`` and ``.failed`` follow
``action.triggered``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from automations.domain import events, firings, ids, invocations, redaction
from automations.domain import prefect_json as pj

AUTOMATION_TRIGGERED = "prefect.automation.triggered"
AUTOMATION_RESOLVED = "prefect.automation.resolved"
ACTION_TRIGGERED = "prefect.automation.action.triggered"
ACTION_EXECUTED = "prefect.automation.action.executed"
ACTION_FAILED = "prefect.automation.action.failed"
AUTOMATION_CREATED = "prefect.automation.created"
AUTOMATION_UPDATED = "prefect.automation.updated"
AUTOMATION_DELETED = "prefect.automation.deleted"

_CHANGED = {
    "created": AUTOMATION_CREATED,
    "updated": AUTOMATION_UPDATED,
    "deleted": AUTOMATION_DELETED,
}

FOLLOWS_WINDOW = 300.0
"""``action.triggered`` follows its triggering event only if they are closer than this (s)."""


def new_event_id() -> str:
    """A fresh event id: a UUIDv7, as Prefect's events have (time-ordered, cheap to index)."""
    return ids.uuid7()


def automation_resource_id(automation_id: str) -> str:
    """``prefect.automation.<id>``."""
    return f"prefect.automation.{automation_id}"


def _resource(
    automation: invocations.AutomationSummary,
    firing: firings.Firing | None,
    *,
    trigger_type: bool,
) -> dict[str, str]:
    labels = {
        events.RESOURCE_ID: automation_resource_id(automation.id),
        events.RESOURCE_NAME: automation.name,
    }
    if firing is not None:
        if trigger_type:
            labels["prefect.trigger-type"] = firing.trigger_type
        if firing.posture:
            labels["prefect.posture"] = firing.posture
    return labels


def automation_state_changed(
    automation: invocations.AutomationSummary,
    firing: firings.Firing,
    *,
    event_id: str,
    received: float,
) -> events.Event:
    """``prefect.automation.triggered`` (or ``.resolved``) for one firing (``occurred`` = its time).

    The payload is Prefect's ``{"triggering_labels", "triggering_event"}``, plus the metric's
    ``triggering_value`` for a metric trigger's firing.

    Args:
        automation: The automation's summary.
        firing: The firing.
        event_id: The event's id (kept with the invocations, so the event can be rebuilt).
        received: The receipt time to stamp.
    """
    trigger_event = firing.triggering_event
    related: tuple[Mapping[str, str], ...] = ()
    if trigger_event is not None:
        related = (
            {
                events.RESOURCE_ID: f"prefect.event.{trigger_event.id}",
                events.RESOURCE_ROLE: "triggering-event",
            },
        )
    payload: dict[str, Any] = {
        "triggering_labels": dict(firing.triggering_labels),
        "triggering_event": None if trigger_event is None else pj.dump_event(trigger_event),
    }
    if firing.trigger_type == "metric":
        payload["triggering_value"] = firing.triggering_value
    resolved = firing.state is firings.FiringState.RESOLVED
    return events.Event(
        id=event_id,
        event=AUTOMATION_RESOLVED if resolved else AUTOMATION_TRIGGERED,
        occurred=firing.triggered,
        resource=_resource(automation, firing, trigger_type=False),
        related=related,
        payload=payload,
        received=received,
    )


def _action_related(
    triggered_event_id: str, trigger_event: events.Event | None
) -> tuple[Mapping[str, str], ...]:
    related: list[Mapping[str, str]] = [
        {
            events.RESOURCE_ID: f"prefect.event.{triggered_event_id}",
            events.RESOURCE_ROLE: "automation-triggered-event",
        }
    ]
    if trigger_event is not None:
        related.append(
            {
                events.RESOURCE_ID: f"prefect.event.{trigger_event.id}",
                events.RESOURCE_ROLE: "triggering-event",
            }
        )
    return tuple(related)


def action_triggered(
    automation: invocations.AutomationSummary,
    firing: firings.Firing,
    *,
    event_id: str,
    triggered_event_id: str,
    action_index: int,
    action_type: str,
    invocation_id: str,
    received: float,
) -> events.Event:
    """``prefect.automation.action.triggered`` for one planned invocation."""
    trigger_event = firing.triggering_event
    follows = None
    if (
        trigger_event is not None
        and abs(firing.triggered - trigger_event.occurred) < FOLLOWS_WINDOW
    ):
        follows = trigger_event.id
    return events.Event(
        id=event_id,
        event=ACTION_TRIGGERED,
        occurred=firing.triggered,
        resource=_resource(automation, firing, trigger_type=True),
        related=_action_related(triggered_event_id, trigger_event),
        payload={
            "action_index": action_index,
            "action_type": action_type,
            "invocation": invocation_id,
        },
        follows=follows,
        received=received,
    )


def action_finished(
    automation: invocations.AutomationSummary,
    firing: firings.Firing | None,
    *,
    event_id: str,
    action_triggered_event_id: str,
    triggered_event_id: str,
    action_index: int,
    action_type: str,
    invocation_id: str,
    now: float,
    details: Mapping[str, Any],
    reason: str | None = None,
) -> events.Event:
    """``prefect.automation.action.executed`` (``reason`` None) or ``.failed`` (with ``reason``).

    Args:
        automation: The automation's summary.
        firing: The firing (for the trigger type and posture labels), when known.
        event_id: The new event's id.
        action_triggered_event_id: The ``action.triggered`` event it follows.
        triggered_event_id: The ``automation.triggered`` event of the firing.
        action_index: The action's index.
        action_type: The action's type.
        invocation_id: The invocation (its idempotency key).
        now: ``occurred`` and receipt time.
        details: Result details merged into the payload (``status_code``, ``emitted_event``,
            ``template_error``, ``notification_log``, ...).
        reason: The failure reason; None for ``.executed``.
    """
    trigger_event = None if firing is None else firing.triggering_event
    payload: dict[str, Any] = {
        "action_index": action_index,
        "action_type": action_type,
        "invocation": invocation_id,
        **redaction.value(details),
    }
    if reason is not None:
        payload["reason"] = redaction.text(reason)
    return events.Event(
        id=event_id,
        event=ACTION_EXECUTED if reason is None else ACTION_FAILED,
        occurred=now,
        resource=_resource(automation, firing, trigger_type=True),
        related=_action_related(triggered_event_id, trigger_event),
        payload=payload,
        follows=action_triggered_event_id,
        received=now,
    )


def automation_changed(
    kind: str, automation_json: Mapping[str, Any], *, now: float
) -> events.Event:
    """``prefect.automation.created`` / ``.updated`` / ``.deleted`` (payload: the automation).

    Args:
        kind: ``created``, ``updated`` or ``deleted``.
        automation_json: The automation in Prefect's JSON shape, with its ``id``.
        now: ``occurred`` and receipt time.
    """
    return events.Event(
        id=new_event_id(),
        event=_CHANGED[kind],
        occurred=now,
        resource={
            events.RESOURCE_ID: automation_resource_id(str(automation_json["id"])),
            events.RESOURCE_NAME: str(automation_json.get("name", "")),
        },
        payload=_without_secrets(automation_json),
        received=now,
    )


_ACTION_LISTS = ("actions", "actions_on_trigger", "actions_on_resolve")


def _without_secrets(automation_json: Mapping[str, Any]) -> dict[str, Any]:
    """The automation for its change events: its actions' inline targets masked.

    The events stay in the event log, readable by anyone who may list events: a webhook's URL
    token or an Apprise URL's password must not (``domain.redaction``).
    """
    out = dict(automation_json)
    for name in _ACTION_LISTS:
        if name in out:
            out[name] = redaction.value(out[name])
    return out
