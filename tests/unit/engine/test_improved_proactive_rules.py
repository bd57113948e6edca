"""The corpus's "improved" rules I1 and I2, and the proactive basics around them."""

from __future__ import annotations

from tests.unit.engine.helpers import T0, automation, engine, event, run

NO_AFTER = {"type": "event", "posture": "Proactive", "expect": ["ping"], "within": 30}
AFTER_NO_FOR_EACH = {
    "type": "event",
    "posture": "Proactive",
    "after": ["start"],
    "expect": ["done"],
    "within": 20,
}


def go(trigger: dict[str, object], timeline: list[object], until: float) -> list[object]:
    eng = engine()
    eng.load_automation(automation(trigger), now=T0)
    return run(eng, timeline, until)  # type: ignore[arg-type]


def test_i1_windows_are_back_to_back_from_load_even_after_a_satisfied_window() -> None:
    fired = go(NO_AFTER, [(5, [event("p", "ping", 5)]), (70, [event("q", "ping", 70)])], 130)
    assert fired == [(60.0, None, {}), (120.0, None, {})]


def test_i1_threshold_2_reports_the_last_counted_event() -> None:
    trigger = {**NO_AFTER, "threshold": 2}
    assert go(trigger, [(5, [event("p", "ping", 5)])], 60) == [(30.0, "p", {}), (60.0, None, {})]


def test_i2_a_window_opens_only_on_an_after_event_and_fires_once() -> None:
    assert go(AFTER_NO_FOR_EACH, [], 100) == []
    timeline = [(25, [event("s", "start", 25)])]
    assert go(AFTER_NO_FOR_EACH, timeline, 200) == [(45.0, "s", {})]


def test_i2_a_later_after_event_in_the_window_becomes_the_triggering_event() -> None:
    timeline = [(25, [event("s1", "start", 25)]), (30, [event("s2", "start", 30)])]
    assert go(AFTER_NO_FOR_EACH, timeline, 200) == [(45.0, "s2", {})]


def test_i2_a_satisfied_window_never_fires() -> None:
    timeline = [(25, [event("s", "start", 25)]), (30, [event("d", "done", 30)])]
    assert go(AFTER_NO_FOR_EACH, timeline, 200) == []


def test_heartbeats_without_for_each_fire_after_the_last_one() -> None:
    trigger = {
        "type": "event",
        "posture": "Proactive",
        "after": ["hb"],
        "expect": ["hb", "done"],
        "within": 90,
    }
    timeline = [(0, [event("h0", "hb", 0)]), (30, [event("h1", "hb", 30)])]
    assert go(trigger, timeline, 400) == [(120.0, "h1", {})]
