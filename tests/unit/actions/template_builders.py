"""Builders shared by the template tests: an event, a compound firing over it, its context."""

from __future__ import annotations

from typing import Any

import pytest

from automations.actions import template_context, templates
from automations.domain import automations, errors, events, firings, prefect_json

FLOW_RUN_ID = "0b6f3c0e-1b2a-4c3d-8e9f-0123456789ab"
MAY_FIRST_NOON = 1714564800.0  # 2024-05-01T12:00:00Z


def spider_walked(event_id: str = "e-walked", **payload: Any) -> events.Event:
    return events.Event(
        id=event_id,
        event="animal.walked",
        occurred=MAY_FIRST_NOON,
        resource={
            "prefect.resource.id": f"prefect.flow-run.{FLOW_RUN_ID}",
            "prefect.resource.name": "daddy-long-legs",
            "kingdom": "animalia",
        },
        related=(
            {
                "prefect.resource.id": "prefect.flow.spiders",
                "prefect.resource.role": "flow",
                "prefect.resource.name": "spiders",
            },
            {"prefect.resource.id": "prefect.tag.eight-legs", "prefect.resource.role": "tag"},
            {"prefect.resource.id": "prefect.tag.hairy", "prefect.resource.role": "tag"},
            {
                "prefect.resource.id": "prefect.flow-run.other",
                "prefect.resource.role": "flow-run",
                "prefect.resource.name": "arachnophobia",
            },
        ),
        payload={"count": 8, "legs": ["l1", "l2"], "nested": {"deep": {"value": "yes"}}, **payload},
        follows="e-leader",
    )


AUTOMATION = {
    "id": "a-1",
    "name": "Arachnophobia",
    "description": "screams",
    "tags": ["spiders", "fear"],
    "trigger": {
        "type": "compound",
        "id": "t-root",
        "require": "all",
        "triggers": [
            {"type": "event", "id": "t-walk", "posture": "Reactive"},
            {"type": "event", "id": "t-quiet", "posture": "Proactive"},
        ],
    },
}


def firing_of(event: events.Event | None = None) -> firings.Firing:
    walk = firings.Firing(
        id="f-walk",
        automation_id="a-1",
        trigger_id="t-walk",
        trigger_type="event",
        posture="Reactive",
        triggered=MAY_FIRST_NOON,
        triggering_event=event,
    )
    quiet = firings.Firing(
        id="f-quiet",
        automation_id="a-1",
        trigger_id="t-quiet",
        trigger_type="event",
        posture="Proactive",
        triggered=MAY_FIRST_NOON + 1,
        triggering_event=None,
    )
    later = spider_walked("e-later")
    third = firings.Firing(
        id="f-third",
        automation_id="a-1",
        trigger_id="t-walk",
        trigger_type="event",
        posture="Reactive",
        triggered=MAY_FIRST_NOON + 2,
        triggering_event=later,
    )
    return firings.Firing(
        id="f-root",
        automation_id="a-1",
        trigger_id="t-root",
        trigger_type="compound",
        posture=None,
        triggered=MAY_FIRST_NOON + 3,
        triggering_event=event,
        triggering_labels={"prefect.resource.id": f"prefect.flow-run.{FLOW_RUN_ID}"},
        child_firings=(walk, quiet, third),
    )


def build_context() -> dict[str, Any]:
    """Prefect's template context for the root firing of :data:`AUTOMATION` on ``spider_walked()``."""
    event = spider_walked()
    return template_context.build_context(
        automation=AUTOMATION, firing=firing_of(event), event=event
    )


def render(source: str, context: dict[str, Any]) -> str:
    return templates.render_template(source, context, field="body")


def automation_with(**lists: list[dict[str, Any]]) -> automations.Automation:
    data: dict[str, Any] = {
        "name": "a",
        "trigger": {"type": "event", "expect": ["animal.walked"]},
        "actions": [{"type": "do-nothing"}],
        **lists,
    }
    return prefect_json.parse_automation(data, automation_id="a-1")


def invalid(automation: automations.Automation) -> errors.InvalidArgument:
    with pytest.raises(errors.InvalidArgument) as info:
        templates.validate_automation_templates(automation)
    return info.value
