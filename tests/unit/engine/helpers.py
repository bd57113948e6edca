"""Small builders shared by the engine's unit tests (times are seconds from T0)."""

from __future__ import annotations

import itertools
from typing import Any

from automations.domain import automations, events, firings, prefect_json
from automations.engine.python_matcher import PythonMatcher
from automations.engine.state import StateRecord, Step
from automations.engine.trigger_engine import TriggerEngine

T0 = 1893456000.0


def automation(trigger: dict[str, Any], automation_id: str = "a1") -> automations.Automation:
    return prefect_json.parse_automation(
        {"name": automation_id, "trigger": trigger, "actions": [{"type": "do-nothing"}]},
        automation_id=automation_id,
    )


def event(
    event_id: str,
    name: str,
    at: float,
    resource: str = "r.1",
    *,
    occurred: float | None = None,
    follows: str | None = None,
    related: tuple[dict[str, str], ...] = (),
    **labels: str,
) -> events.Event:
    when = T0 + (at if occurred is None else occurred)
    return events.Event(
        id=event_id,
        event=name,
        occurred=when,
        resource={"prefect.resource.id": resource, **labels},
        related=related,
        follows=follows,
        received=when,
    )


def engine() -> TriggerEngine:
    counter = itertools.count(1)
    return TriggerEngine(PythonMatcher(), new_id=lambda: f"f{next(counter)}")


def fired(step: Step) -> list[tuple[float, str | None, dict[str, str]]]:
    """The step's Triggered firings (Resolved ones are reported apart, see ``resolved``)."""
    return [
        (round(f.triggered - T0, 6), f.triggering_event_id, dict(f.triggering_labels))
        for f in step.firings
        if f.state is firings.FiringState.TRIGGERED
    ]


def resolved(step: Step) -> list[tuple[float, str | None, dict[str, str]]]:
    """The step's Resolved firings."""
    return [
        (round(f.triggered - T0, 6), f.triggering_event_id, dict(f.triggering_labels))
        for f in step.firings
        if f.state is firings.FiringState.RESOLVED
    ]


class Store:
    """Applies steps' records like the store does (deletes first, then upserts)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, str, str], StateRecord] = {}

    def apply(self, step: Step) -> Step:
        upserted = [r.identity for r in step.upserts]
        deleted = [r.identity for r in step.deletes]
        assert len(set(upserted)) == len(upserted), "an identity upserted twice in one step"
        assert not set(upserted) & set(deleted), "an identity both upserted and deleted"
        for record in step.deletes:
            self.rows.pop(record.identity, None)
        for record in step.upserts:
            self.rows[record.identity] = record
        return step

    def global_records(self) -> list[StateRecord]:
        return [r for r in self.rows.values() if r.automation_id == ""]

    def records_of(self, automation_id: str) -> list[StateRecord]:
        return [r for r in self.rows.values() if r.automation_id == automation_id]


def run(
    eng: TriggerEngine,
    timeline: list[tuple[float, list[events.Event]]],
    until: float,
    store: Store | None = None,
    start: float = 0.0,
) -> list[tuple[float, str | None, dict[str, str]]]:
    """Drives an engine like the service: advance to each deadline, process each batch."""
    out: list[tuple[float, str | None, dict[str, str]]] = []
    pending = sorted(timeline, key=lambda item: item[0])
    current = start
    while True:
        due = eng.next_due()
        candidates = [T0 + t for t, _ in pending[:1]]
        if due is not None:
            candidates.append(max(due, T0 + current))
        if not candidates:
            break
        instant = min(candidates)
        if instant > T0 + until:
            break
        current = instant - T0
        step = eng.advance(instant)
        if store is not None:
            store.apply(step)
        out.extend(fired(step))
        if pending and T0 + pending[0][0] == instant:
            _, batch = pending.pop(0)
            step = eng.process(batch, instant)
            if store is not None:
                store.apply(step)
            out.extend(fired(step))
    return out
