"""A proactive trigger's key that fired resolves when its expected events resume; nothing else."""

from __future__ import annotations

from typing import Any

from tests.unit.engine.helpers import event
from tests.unit.engine.metric_helpers import Driver

STUCK = {
    "type": "event",
    "posture": "Proactive",
    "after": ["run.started"],
    "expect": ["run.finished"],
    "for_each": ["prefect.resource.id"],
    "within": 30,
}
SILENCE = {"type": "event", "posture": "Proactive", "expect": ["ping"], "within": 30}
R1 = {"prefect.resource.id": "r.1"}


def test_the_first_expected_event_after_the_window_resolves_its_key() -> None:
    drive = Driver(STUCK)
    drive.send(0, event("s1", "run.started", 0), event("s2", "run.started", 0, "r.2"))
    assert drive.until(30) == [
        (30.0, "Triggered", None, R1, "s1"),
        (30.0, "Triggered", None, {"prefect.resource.id": "r.2"}, "s2"),
    ]
    assert drive.send(50, event("f1", "run.finished", 50)) == [(50.0, "Resolved", None, R1, "f1")]
    assert drive.send(60, event("f1b", "run.finished", 60)) == []  # resolved once


def test_triggered_firings_are_the_same_with_resolutions_beside_them() -> None:
    drive = Driver(SILENCE)
    drive.send(70, event("p1", "ping", 70))
    drive.until(200)
    assert [c[:2] for c in drive.changes] == [
        (30.0, "Triggered"),
        (60.0, "Triggered"),
        (70.0, "Resolved"),  # the first ping after a window that fired
        (120.0, "Triggered"),  # silence again from 90: a new excursion
        (150.0, "Triggered"),
        (180.0, "Triggered"),
    ]


def test_a_threshold_above_one_needs_that_many_expected_events_within_the_window() -> None:
    drive = Driver({**STUCK, "threshold": 2})
    drive.send(0, event("s1", "run.started", 0))
    assert [c[:2] for c in drive.until(30)] == [(30.0, "Triggered")]
    assert drive.send(40, event("f1", "run.finished", 40)) == []
    assert drive.send(75, event("f2", "run.finished", 75)) == []  # 35 s after f1: from f2 on
    assert drive.send(80, event("f3", "run.finished", 80)) == [(80.0, "Resolved", None, R1, "f3")]


def test_a_key_that_fires_again_counts_from_its_new_window() -> None:
    drive = Driver({**SILENCE, "threshold": 2})
    drive.until(30)
    assert drive.send(40, event("p1", "ping", 40)) == []
    assert drive.until(60) == [(60.0, "Triggered", None, {}, "p1")]  # [30, 60) had one ping
    assert drive.send(75, event("p2", "ping", 75)) == []  # p1 and p2 would have made two
    assert drive.send(80, event("p3", "ping", 80)) == [(80.0, "Resolved", None, {}, "p3")]


def test_an_expected_event_that_occurred_before_the_window_ended_does_not_resolve() -> None:
    drive = Driver(STUCK)
    drive.send(0, event("s1", "run.started", 0))
    drive.until(30)
    assert drive.send(40, event("late", "run.finished", 40, occurred=20)) == []
    assert drive.send(41, event("f", "run.finished", 41)) == [(41.0, "Resolved", None, R1, "f")]


def test_reactive_triggers_never_resolve() -> None:
    reactive: dict[str, Any] = {"type": "event", "expect": ["x"], "threshold": 1, "within": 0}
    drive = Driver(reactive)
    for i in range(5):
        drive.send(i, event(f"x{i}", "x", i))
    assert {c[1] for c in drive.changes} == {"Triggered"}


def test_a_proactive_child_of_a_composite_trigger_does_not_resolve() -> None:
    compound = {"type": "compound", "require": "any", "triggers": [SILENCE]}
    drive = Driver(compound)
    drive.send(40, event("p", "ping", 40))
    assert [c[1] for c in drive.changes] == ["Triggered"]


def test_a_key_waiting_to_resolve_survives_a_restart() -> None:
    drive = Driver(STUCK)
    drive.send(0, event("s1", "run.started", 0))
    drive.until(30)
    drive.restart(40)
    assert drive.send(50, event("f1", "run.finished", 50)) == [(50.0, "Resolved", None, R1, "f1")]
    assert "resolution" not in drive.kinds()
