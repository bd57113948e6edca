"""next_due() names the exact deadline; updating an automation keeps unchanged triggers' state."""

from __future__ import annotations

import pytest

from automations.domain import errors
from tests.unit.engine.helpers import T0, automation, engine, event, fired

PROACTIVE = {
    "type": "event",
    "posture": "Proactive",
    "after": ["start"],
    "expect": ["done"],
    "for_each": ["prefect.resource.id"],
    "within": 30,
}
REACTIVE = {"type": "event", "posture": "Reactive", "expect": ["x"], "threshold": 2, "within": 60}


def test_deadlines_come_due_in_time_order_and_advance_fires_only_those_due() -> None:
    eng = engine()
    for aid, within in (("a30", 30), ("a10", 10), ("a20", 20)):
        trigger = {"type": "event", "posture": "Proactive", "expect": ["x"], "within": within}
        eng.load_automation(automation(trigger, automation_id=aid), now=T0)

    def due() -> float | None:
        at = eng.next_due()
        return None if at is None else at - T0

    def advance(at: float) -> list[tuple[float, str]]:
        return [(f.triggered - T0, f.automation_id) for f in eng.advance(T0 + at).firings]

    assert due() == 10
    assert advance(9.999) == []
    assert advance(10) == [(10, "a10")]  # and a10's next window ends at 20
    assert due() == 20
    assert advance(25) == [(25, "a10"), (25, "a20")]  # due together: in load order
    assert due() == 30  # a30; windows that fired late restart when they fired: 35 and 45
    assert advance(30) == [(30, "a30")]
    assert due() == 35


def test_next_due_is_the_window_end_and_nothing_fires_before_it() -> None:
    eng = engine()
    eng.load_automation(automation(PROACTIVE), now=T0)
    assert eng.next_due() is None
    eng.process([event("s", "start", 1.25)], T0 + 1.25)
    assert eng.next_due() == T0 + 31.25
    assert fired(eng.advance(T0 + 31.249)) == []
    assert fired(eng.advance(T0 + 31.25)) == [(31.25, "s", {"prefect.resource.id": "r.1"})]
    assert eng.next_due() is None


def test_a_satisfied_window_has_no_deadline_left() -> None:
    eng = engine()
    eng.load_automation(automation(PROACTIVE), now=T0)
    eng.process([event("s", "start", 1)], T0 + 1)
    eng.process([event("d", "done", 2)], T0 + 2)
    assert fired(eng.advance(T0 + 31)) == []


def test_next_due_includes_lost_followers() -> None:
    eng = engine()
    eng.process([event("f", "x", 10, follows="missing")], T0 + 10)
    assert eng.next_due() == T0 + 910


def test_reactive_buckets_are_swept_60_s_after_their_end() -> None:
    eng = engine()
    eng.load_automation(automation(REACTIVE), now=T0)
    eng.process([event("a", "x", 0)], T0)
    assert eng.next_due() == T0 + 120
    step = eng.advance(T0 + 120)
    assert [r.kind for r in step.deletes] == ["bucket"]
    assert eng.next_due() is None


def test_an_update_keeps_the_state_of_unchanged_triggers() -> None:
    eng = engine()
    eng.load_automation(automation(REACTIVE), now=T0)
    eng.process([event("a", "x", 0)], T0)
    eng.load_automation(automation(REACTIVE), now=T0 + 1)  # same definition: same trigger id
    assert fired(eng.process([event("b", "x", 5)], T0 + 5)) == [(5.0, "b", {})]


def test_an_update_drops_the_state_of_changed_triggers_and_deletes_their_records() -> None:
    eng = engine()
    eng.load_automation(automation(REACTIVE), now=T0)
    first = eng.process([event("a", "x", 0)], T0)
    (bucket,) = [r for r in first.upserts if r.kind == "bucket"]
    eng.load_automation(automation({**REACTIVE, "threshold": 3}), now=T0 + 1)
    step = eng.process([event("b", "x", 5)], T0 + 5)
    assert fired(step) == []
    assert bucket.identity in {r.identity for r in step.deletes}
    assert fired(eng.process([event("c", "x", 6)], T0 + 6)) == []
    assert fired(eng.process([event("d", "x", 7)], T0 + 7)) == [(7.0, "d", {})]


def test_unloading_stops_firing_and_deadlines() -> None:
    eng = engine()
    eng.load_automation(automation(PROACTIVE), now=T0)
    eng.process([event("s", "start", 1)], T0 + 1)
    eng.unload_automation("a1")
    assert eng.next_due() is None
    assert fired(eng.advance(T0 + 100)) == []
    assert eng.loaded_automations() == []


def test_a_proactive_within_of_0_means_10_seconds() -> None:
    eng = engine()
    trigger = {"type": "event", "posture": "Proactive", "expect": ["x"], "within": 0}
    eng.load_automation(automation(trigger), now=T0)
    assert eng.next_due() == T0 + 10


@pytest.mark.parametrize(
    "trigger",
    [
        {"type": "event", "posture": "Proactive", "expect": ["x"], "within": 5},
        {"type": "event", "posture": "Reactive", "expect": ["x"], "within": -1},
        {"type": "event", "posture": "Reactive", "expect": ["x"], "within": None},
        {"type": "compound", "require": 3, "triggers": [{"type": "event"}, {"type": "event"}]},
        {"type": "compound", "require": 0, "triggers": [{"type": "event"}]},
    ],
)
def test_prefect_rejects_these_before_they_reach_the_engine(trigger: dict[str, object]) -> None:
    with pytest.raises(errors.InvalidArgument):
        automation(trigger)
