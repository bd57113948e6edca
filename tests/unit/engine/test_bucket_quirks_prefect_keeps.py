"""Prefect quirks the corpus does not pin, reproduced on purpose (see buckets.py)."""

from __future__ import annotations

from typing import Any

from tests.unit.engine.helpers import automation, engine, event, run


def go(trigger: dict[str, Any], timeline: list[Any], until: float = 300) -> list[Any]:
    eng = engine()
    eng.load_automation(automation(trigger), now=1893456000.0)
    return run(eng, timeline, until)


IMMEDIATE_2 = {"type": "event", "posture": "Reactive", "expect": ["x"], "threshold": 2, "within": 0}
AFTER_0 = {"type": "event", "posture": "Reactive", "after": ["arm"], "expect": ["x"], "within": 0}


def test_within_0_threshold_2_counts_until_the_bucket_is_swept() -> None:
    assert go(IMMEDIATE_2, [(0, [event("a", "x", 0)]), (50, [event("b", "x", 50)])]) == [
        (50.0, "b", {})
    ]


def test_within_0_threshold_2_forgets_once_swept_60_s_after_the_end() -> None:
    assert go(IMMEDIATE_2, [(0, [event("a", "x", 0)]), (70, [event("b", "x", 70)])]) == []


def test_after_with_within_0_counts_until_the_sweep() -> None:
    timeline = [(0, [event("a", "arm", 0)]), (50, [event("b", "x", 50)])]
    assert go(AFTER_0, timeline) == [(50.0, "b", {})]
    assert go(AFTER_0, [(0, [event("a", "arm", 0)]), (61, [event("b", "x", 61)])]) == []


def test_threshold_0_without_after_fires_twice_on_an_event_past_the_window() -> None:
    trigger = {
        "type": "event",
        "posture": "Reactive",
        "expect": ["x"],
        "threshold": 0,
        "within": 10,
    }
    timeline = [(0, [event("a", "x", 0)]), (25, [event("b", "x", 25)])]
    assert go(trigger, timeline) == [(0.0, "a", {}), (25.0, "b", {}), (25.0, "b", {})]


def test_proactive_for_each_without_after_threshold_1_never_fires() -> None:
    trigger = {
        "type": "event",
        "posture": "Proactive",
        "expect": ["x"],
        "for_each": ["prefect.resource.id"],
        "within": 10,
    }
    assert go(trigger, [(0, [event("a", "x", 0)])]) == []


def test_a_lagging_clock_lets_a_late_expected_event_fire_a_proactive_window() -> None:
    trigger = {
        "type": "event",
        "posture": "Proactive",
        "after": ["start"],
        "expect": ["x"],
        "for_each": ["prefect.resource.id"],
        "within": 30,
    }
    timeline = [
        (100, [event("s", "start", 100, occurred=0)]),
        (110, [event("x1", "x", 110, occurred=40)]),
    ]
    assert go(trigger, timeline) == [(110.0, "x1", {"prefect.resource.id": "r.1"})]


def test_a_lagging_clock_delays_the_proactive_deadline() -> None:
    trigger = {
        "type": "event",
        "posture": "Proactive",
        "after": ["start"],
        "expect": ["x"],
        "for_each": ["prefect.resource.id"],
        "within": 30,
    }
    # occurred 0, taken up at 100: the offset is -100, so [0, 30) is due at wall 130
    assert go(trigger, [(100, [event("s", "start", 100, occurred=0)])]) == [
        (130.0, "s", {"prefect.resource.id": "r.1"})
    ]


def test_an_after_event_does_not_rearm_an_expired_unswept_reactive_window() -> None:
    trigger = {
        "type": "event",
        "posture": "Reactive",
        "after": ["arm"],
        "expect": ["x"],
        "for_each": ["prefect.resource.id"],
        "within": 10,
    }
    timeline = [
        (0, [event("a1", "arm", 0)]),
        (20, [event("a2", "arm", 20)]),  # [0, 10) expired but unswept: kept as it is
        (25, [event("x1", "x", 25)]),  # past the end: deletes the stale window, no fire
        (30, [event("a3", "arm", 30)]),
        (35, [event("x2", "x", 35)]),
    ]
    assert go(trigger, timeline) == [(35.0, "x2", {"prefect.resource.id": "r.1"})]


def test_reactive_same_event_after_and_expect_counts_from_the_second() -> None:
    trigger = {
        "type": "event",
        "posture": "Reactive",
        "after": ["tick"],
        "expect": ["tick"],
        "within": 5,
    }
    timeline = [(t, [event(f"t{t}", "tick", t)]) for t in (1, 2, 3, 4, 61, 62)]
    assert go(trigger, timeline) == [(2.0, "t2", {}), (4.0, "t4", {}), (62.0, "t62", {})]


def test_a_bucket_opened_by_a_lost_follower_with_an_old_end_is_swept_in_the_same_pass() -> None:
    trigger = {"type": "event", "posture": "Reactive", "threshold": 2, "within": 10}
    timeline = [
        (1, [event("e0", "x", 1, occurred=0, follows="ghost")]),
        (8, [event("e1", "x", 8, follows="ghost")]),
    ]
    # Prefect's periodic pass evaluates lost followers, then sweeps buckets that ended 60 s ago
    assert go(trigger, timeline, 2000) == []
