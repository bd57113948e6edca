"""With derived ids, evaluating the same input again makes the same firings with the same ids.

What a cluster partition relies on when a batch is evaluated again after a failover; the
lifecycle events planned for a firing are derived from its id the same way.
"""

from __future__ import annotations

from typing import Any

from automations.actions import planning
from automations.domain import events, firings, ids
from automations.engine.python_matcher import PythonMatcher
from automations.engine.trigger_engine import TriggerEngine
from tests.unit.engine.helpers import T0, automation, event

REACTIVE = {
    "type": "event",
    "posture": "Reactive",
    "expect": ["x"],
    "for_each": ["prefect.resource.id"],
    "threshold": 2,
    "within": 60,
}
PROACTIVE = {
    "type": "event",
    "posture": "Proactive",
    "after": ["start"],
    "expect": ["done"],
    "for_each": ["prefect.resource.id"],
    "within": 30,
}
COMPOUND = {
    "type": "compound",
    "require": "all",
    "within": 60,
    "triggers": [
        {"type": "event", "expect": ["a"], "threshold": 1, "within": 0},
        {"type": "event", "expect": ["b"], "threshold": 1, "within": 0},
    ],
}


def run(
    trigger: dict[str, Any], steps: list[tuple[float, list[events.Event]]], until: float
) -> list[firings.Firing]:
    engine = TriggerEngine(PythonMatcher(), derive_ids=True)
    engine.load_automation(automation(trigger), now=T0)
    out: list[firings.Firing] = []
    for at, batch in steps:
        out += engine.advance(T0 + at).firings
        out += engine.process(batch, T0 + at).firings
    out += engine.advance(T0 + until).firings
    return out


def test_reactive_proactive_resolved_and_composite_firings_get_the_same_ids_again() -> None:
    cases = [
        (
            REACTIVE,
            [(1, [event("e1", "x", 1)]), (2, [event("e2", "x", 2), event("e3", "x", 2, "r.2")])],
            10,
        ),
        (
            PROACTIVE,
            [
                (0, [event("s1", "start", 0), event("s2", "start", 0, "r.2")]),
                (50, [event("d1", "done", 50)]),
            ],
            100,
        ),
        (
            COMPOUND,
            [
                (1, [event("a1", "a", 1)]),
                (2, [event("b1", "b", 2)]),
                (3, [event("a2", "a", 3), event("b2", "b", 3)]),
            ],
            10,
        ),
    ]
    for trigger, steps, until in cases:
        first, again = run(trigger, steps, until), run(trigger, steps, until)
        assert first and [f.id for f in first] == [f.id for f in again]
        assert len({f.id for f in first}) == len(first)  # distinct firings, distinct ids
    proactive = run(PROACTIVE, cases[1][1], 100)
    assert {f.state for f in proactive} == {
        firings.FiringState.TRIGGERED,
        firings.FiringState.RESOLVED,
    }


def test_derived_ids_do_not_depend_on_when_the_input_is_evaluated() -> None:
    engine = TriggerEngine(PythonMatcher(), derive_ids=True)
    engine.load_automation(automation(REACTIVE), now=T0)
    later = TriggerEngine(PythonMatcher(), derive_ids=True)
    later.load_automation(automation(REACTIVE), now=T0 + 500)
    batch = [event("e1", "x", 1), event("e2", "x", 2)]
    (fired,) = engine.process(batch, T0 + 2).firings
    (again,) = later.process(batch, T0 + 700).firings  # replayed much later
    assert fired.id == again.id and fired.triggered != again.triggered


def test_without_derived_ids_each_firing_gets_a_fresh_time_ordered_id() -> None:
    engine = TriggerEngine(PythonMatcher())
    engine.load_automation(automation(REACTIVE), now=T0)
    (fired,) = engine.process([event("e1", "x", 1), event("e2", "x", 2)], T0 + 2).firings
    assert fired.id[14] == "7"  # UUIDv7


def test_lifecycle_events_of_a_firing_are_derived_from_its_id() -> None:
    auto = automation(REACTIVE)
    firing = firings.Firing(
        id=ids.derived("f", T0),
        automation_id=auto.id,
        trigger_id="t",
        trigger_type="event",
        posture="Reactive",
        triggered=T0,
        triggering_event=event("e1", "x", 1),
        triggering_labels={},
    )
    plans = [
        planning.plan_firing(auto, firing, now=T0 + k, depth=0, lease=30.0, origin="e1")
        for k in range(2)
    ]
    first, again = ([c.event.id for c in p.events] for p in plans)
    assert first == again and len(set(first)) == len(first)
    assert first[0] == ids.derived_from(firing.id, "triggered")
