"""Builders of domain objects shared by the tests: events, automations, firings, invocations; a clock."""

from __future__ import annotations

import dataclasses
from typing import Any

from automations.domain import actions, automations, invocations, prefect_json
from automations.domain.events import Event
from automations.domain.firings import Firing


def event(
    event_id: str,
    name: str = "prefect.flow-run.Completed",
    occurred: float = 1000.0,
    resource_id: str = "prefect.flow-run.1",
    **extra: Any,
) -> Event:
    return Event(
        id=event_id,
        event=name,
        occurred=occurred,
        resource={"prefect.resource.id": resource_id, "prefect.resource.name": "run"},
        related=({"prefect.resource.id": "prefect.flow.9", "prefect.resource.role": "flow"},),
        payload=extra.pop("payload", {"n": 1, "nested": {"a": [1, 2.5, None, "x"]}}),
        follows=extra.pop("follows", None),
        received=extra.pop("received", occurred + 0.5),
    )


def automation(
    automation_id: str,
    *,
    name: str = "a",
    enabled: bool = True,
    created: float = 100.0,
    expect: str = "prefect.flow-run.Failed",
) -> automations.Automation:
    data = {
        "name": name,
        "description": "d",
        "enabled": enabled,
        "tags": ["t1"],
        "trigger": {
            "type": "event",
            "id": "trig-1",
            "posture": "Reactive",
            "match": {"prefect.resource.id": "prefect.flow-run.*"},
            "expect": [expect],
            "for_each": ["prefect.resource.id"],
            "threshold": 2,
            "within": 60,
        },
        "actions": [{"type": "do-nothing"}],
    }
    parsed = prefect_json.parse_automation(
        data, automation_id=automation_id, created=created, updated=created
    )
    return dataclasses.replace(parsed, version=1)


def firing(
    firing_id: str, automation_id: str = "a1", triggered: float = 2000.0, with_child: bool = False
) -> Firing:
    child = Firing(
        id=f"{firing_id}-child",
        automation_id=automation_id,
        trigger_id="child",
        trigger_type="event",
        posture="Reactive",
        triggered=triggered - 1,
        triggering_event=event(f"{firing_id}-ev-child"),
        triggering_labels={"prefect.resource.id": "r"},
    )
    return Firing(
        id=firing_id,
        automation_id=automation_id,
        trigger_id="trig-1",
        trigger_type="compound" if with_child else "event",
        posture=None if with_child else "Reactive",
        triggered=triggered,
        triggering_event=None if with_child else event(f"{firing_id}-ev"),
        triggering_labels={"prefect.resource.id": "prefect.flow-run.1"},
        child_firings=(child,) if with_child else (),
    )


def request(
    action: actions.Action | None = None,
    *,
    automation_id: str = "a1",
    name: str = "orders",
    depth: int = 0,
    on_trigger: bool = False,
) -> invocations.InvocationRequest:
    return invocations.InvocationRequest(
        action=action or actions.Action("call-webhook", {"url": "http://x"}),
        automation=invocations.AutomationSummary(id=automation_id, name=name),
        depth=depth,
        triggered_event_id="t-ev",
        action_triggered_event_id="at-ev",
        on_trigger=on_trigger,
    )


def invocation(
    n: int,
    *,
    due: float = 10.0,
    automation_id: str = "a1",
    action: actions.Action | None = None,
    **fields: Any,
) -> invocations.Invocation:
    """The n-th invocation of automation ``automation_id`` (id ``i{n}``), pending and due at ``due``."""
    values: dict[str, Any] = {
        "id": f"i{n}",
        "automation_id": automation_id,
        "firing_id": f"f{n}",
        "action_index": 0,
        "action_type": (action.type if action else "call-webhook"),
        "idempotency_key": f"{automation_id}/f{n}/0",
        "request": request(action, automation_id=automation_id),
        "next_attempt_at": due,
        "created": float(n),
        "updated": float(n),
    }
    values.update(fields)
    return invocations.Invocation(**values)


def prefect_metric_trigger() -> dict[str, Any]:
    """Prefect's ``successes`` metric over production flow runs, as Prefect's client writes it."""
    return {
        "type": "metric",
        "posture": "Metric",
        "match": {"prefect.resource.id": "prefect.flow-run.*"},
        "match_related": {
            "prefect.resource.id": "prefect.tag.production",
            "prefect.resource.role": "tag",
        },
        "metric": {
            "name": "successes",
            "threshold": 0.9,
            "operator": "<",
            "range": 3600,
            "firing_for": 300,
        },
    }


def without_ids(trigger: Any) -> Any:
    """A printed trigger without the ids the engine gives triggers."""
    if isinstance(trigger, dict):
        return {k: without_ids(v) for k, v in trigger.items() if k != "id"}
    if isinstance(trigger, list):
        return [without_ids(t) for t in trigger]
    return trigger


class Clock:
    """A wall clock that stands still until a test moves it (``clock.now = ...``)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
