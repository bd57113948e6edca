"""Compound and sequence triggers: child firings, nesting, processing-time within."""

from __future__ import annotations

from typing import Any

from tests.unit.engine.helpers import T0, automation, engine, event, fired


def child(name: str, **extra: Any) -> dict[str, Any]:
    return {"type": "event", "posture": "Reactive", "expect": [name], "within": 0, **extra}


def test_the_parent_firing_carries_the_consumed_child_firings() -> None:
    eng = engine()
    trigger = {
        "type": "compound",
        "require": "all",
        "within": None,
        "triggers": [child("a"), child("b")],
    }
    eng.load_automation(automation(trigger), now=T0)
    eng.process([event("a1", "a", 1)], T0 + 1)
    step = eng.process([event("b1", "b", 2)], T0 + 2)
    (firing,) = step.firings
    assert firing.trigger_type == "compound"
    assert firing.triggering_event_id == "b1"
    assert dict(firing.triggering_labels) == {}
    assert [c.triggering_event_id for c in firing.child_firings] == ["a1", "b1"]
    assert {r.kind for r in step.deletes} == {"child_firing"}


def test_only_the_latest_firing_per_child_is_kept() -> None:
    eng = engine()
    trigger = {
        "type": "compound",
        "require": "all",
        "within": None,
        "triggers": [child("a"), child("b")],
    }
    eng.load_automation(automation(trigger), now=T0)
    eng.process([event("a1", "a", 1)], T0 + 1)
    eng.process([event("a2", "a", 2)], T0 + 2)
    (firing,) = eng.process([event("b1", "b", 3)], T0 + 3).firings
    assert [c.triggering_event_id for c in firing.child_firings] == ["a2", "b1"]


def test_a_sequence_nested_in_a_compound() -> None:
    eng = engine()
    trigger = {
        "type": "compound",
        "require": "any",
        "within": None,
        "triggers": [
            {"type": "sequence", "within": 60, "triggers": [child("a"), child("b")]},
            child("z"),
        ],
    }
    eng.load_automation(automation(trigger), now=T0)
    assert fired(eng.process([event("b1", "b", 1)], T0 + 1)) == []
    assert fired(eng.process([event("a1", "a", 2)], T0 + 2)) == []
    assert fired(eng.process([event("b2", "b", 3)], T0 + 3)) == [(3.0, "b2", {})]
    assert fired(eng.process([event("z1", "z", 4)], T0 + 4)) == [(4.0, "z1", {})]


def test_within_is_measured_on_processing_time_not_event_time() -> None:
    eng = engine()
    trigger = {"type": "sequence", "within": 60, "triggers": [child("a"), child("b")]}
    eng.load_automation(automation(trigger), now=T0)
    # events that occurred 14 minutes apart but are processed together still fire
    batch = [event("a1", "a", 1000, occurred=0), event("b1", "b", 1000, occurred=840)]
    assert fired(eng.process(batch, T0 + 1000)) == [(1000.0, "b1", {})]


def test_a_proactive_child_completes_a_compound_at_its_deadline() -> None:
    eng = engine()
    proactive = {"type": "event", "posture": "Proactive", "expect": ["ping"], "within": 30}
    trigger = {
        "type": "compound",
        "require": "all",
        "within": 100,
        "triggers": [child("a"), proactive],
    }
    eng.load_automation(automation(trigger), now=T0)
    eng.process([event("a1", "a", 10)], T0 + 10)
    assert eng.next_due() == T0 + 30
    assert fired(eng.advance(T0 + 30)) == [(30.0, None, {})]
