"""Builders for the metric-trigger tests: flow-run events and a driver on a virtual clock."""

from __future__ import annotations

from typing import Any

from automations.domain import events, firings
from automations.engine.trigger_engine import TriggerEngine
from tests.unit.engine.helpers import T0, Store, automation, engine

Change = tuple[float, str, float | None, dict[str, str], str | None]
"""A firing as the tests compare it: (at, state, triggering_value, labels, triggering event id)."""


def metric(name: str, threshold: float, operator: str, **query: Any) -> dict[str, Any]:
    """A metric trigger over flow runs (``range`` and ``firing_for`` 300 s unless given)."""
    return {
        "type": "metric",
        "posture": "Metric",
        "match": {"prefect.resource.id": "prefect.flow-run.*"},
        "metric": {"name": name, "threshold": threshold, "operator": operator, **query},
    }


def run_event(
    event_id: str,
    state: str,
    run: str,
    at: float,
    *,
    deployment: str = "d1",
    occurred: float | None = None,
) -> events.Event:
    """``prefect.flow-run.<state>`` of flow run ``run``, related to a deployment."""
    when = T0 + (at if occurred is None else occurred)
    return events.Event(
        id=event_id,
        event=f"prefect.flow-run.{state}",
        occurred=when,
        resource={"prefect.resource.id": f"prefect.flow-run.{run}", "prefect.state-name": state},
        related=(
            {
                "prefect.resource.id": f"prefect.deployment.{deployment}",
                "prefect.resource.role": "deployment",
            },
        ),
        received=when,
    )


def plain(
    event_id: str,
    name: str,
    at: float,
    resource: str = "r.1",
    *,
    payload: dict[str, Any] | None = None,
    occurred: float | None = None,
) -> events.Event:
    """Any event, with a payload."""
    when = T0 + (at if occurred is None else occurred)
    return events.Event(
        id=event_id,
        event=name,
        occurred=when,
        resource={"prefect.resource.id": resource},
        payload=payload or {},
        received=when,
    )


def change(firing: firings.Firing) -> Change:
    return (
        round(firing.triggered - T0, 6),
        firing.state.value,
        firing.triggering_value,
        dict(firing.triggering_labels),
        firing.triggering_event_id,
    )


class Driver:
    """Runs one automation like the service does, keeping its records as the store would.

    ``restart(at)`` replaces the engine by one loaded from the records (a kill -9 and a restart).
    """

    def __init__(self, trigger: dict[str, Any], *, automation_id: str = "m1") -> None:
        self.automation = automation(trigger, automation_id=automation_id)
        self.store = Store()
        self.engine: TriggerEngine = engine()
        self.engine.load_automation(self.automation, now=T0)
        self.now = T0
        self.changes: list[Change] = []

    def _take(self, step: Any) -> None:
        self.store.apply(step)
        self.changes.extend(change(f) for f in step.firings)

    def until(self, at: float) -> list[Change]:
        """Advances through every deadline up to ``at`` (inclusive); returns the new changes."""
        start = len(self.changes)
        target = T0 + at
        while True:
            due = self.engine.next_due()
            if due is None or max(due, self.now) > target:
                break
            self.now = max(due, self.now)
            self._take(self.engine.advance(self.now))
        self.now = target
        self._take(self.engine.advance(target))
        return self.changes[start:]

    def send(self, at: float, *batch: events.Event) -> list[Change]:
        """Advances to ``at``, then processes ``batch`` there; returns the new changes."""
        start = len(self.changes)
        self.until(at)
        self._take(self.engine.process(list(batch), T0 + at))
        return self.changes[start:]

    def restart(self, at: float) -> None:
        """Advances to ``at``, then restarts from the records."""
        self.until(at)
        fresh = engine()
        fresh.restore_global(self.store.global_records())
        fresh.load_automation(
            self.automation, self.store.records_of(self.automation.id), now=self.now
        )
        self.engine = fresh

    def kinds(self) -> set[str]:
        """The kinds of the records held."""
        return {record.kind for record in self.store.rows.values()}
