"""The Triggered/Resolved state machine of metric triggers, per group, across restarts."""

from __future__ import annotations

from typing import Any

import pytest

from automations.engine import state
from tests.unit.engine.helpers import T0
from tests.unit.engine.metric_helpers import Driver, plain, run_event


def failures(operator: str, threshold: float, **query: Any) -> dict[str, Any]:
    """A count of ``job.failed`` events (a metric of one's own)."""
    return {
        "type": "metric",
        "metric": {
            "name": "failures",
            "events": ["job.failed"],
            "threshold": threshold,
            "operator": operator,
            "range": 600,
            "firing_for": 300,
            **query,
        },
    }


def failed(event_id: str, at: float, resource: str = "job.1") -> Any:
    return plain(event_id, "job.failed", at, resource)


@pytest.mark.parametrize(
    ("operator", "expected"),
    [
        ("<", []),
        ("<=", [(300.0, "Triggered", 2.0, {}, None), (700.0, "Resolved", 3.0, {}, None)]),
        (">", [(700.0, "Triggered", 3.0, {}, None)]),
        (">=", [(300.0, "Triggered", 2.0, {}, None)]),
    ],
)
def test_each_operator_and_equality_breaches_only_for_or_equal(
    operator: str, expected: list[Any]
) -> None:
    # the count equals the threshold (2) from 0 to 400, then it is 3
    drive = Driver(failures(operator, 2, range=3600))
    drive.send(0, failed("a", 0), failed("b", 0))
    drive.send(400, failed("c", 400))
    drive.until(1000)
    assert drive.changes == expected


def test_a_breach_shorter_than_firing_for_does_not_trigger() -> None:
    drive = Driver(failures(">", 1, range=300))
    drive.send(0, failed("a", 0), failed("b", 0))
    # both leave the window at 300: the breach held for [0, 300) only
    assert drive.until(2000) == []


def test_triggered_exactly_when_the_breach_has_held_for_firing_for() -> None:
    drive = Driver(failures(">", 1, firing_for=450))
    drive.send(10, failed("a", 10))
    drive.send(20, failed("b", 20))
    assert drive.engine.next_due() == T0 + 470
    assert drive.until(469) == []
    assert drive.until(470) == [(470.0, "Triggered", 2.0, {}, None)]


def test_a_recovery_shorter_than_firing_for_does_not_resolve_and_one_that_holds_does() -> None:
    drive = Driver(failures(">", 1, range=400))
    drive.send(0, failed("a", 0), failed("b", 0))
    drive.send(100, failed("c", 100))
    assert drive.until(300) == [(300.0, "Triggered", 3.0, {}, None)]
    # 400: a, b leave (count 1: recovering); 450: d makes it 2 again: the recovery is broken
    drive.send(450, failed("d", 450))
    assert drive.until(550) == []
    # 500: c leaves (1); 850: d leaves (0): recovering since 500 -> Resolved at 800
    assert drive.until(799) == []
    assert drive.until(800) == [(800.0, "Resolved", 1.0, {}, None)]
    assert drive.until(5000) == []


def test_one_triggered_per_excursion_however_long_the_breach() -> None:
    drive = Driver(failures(">", 0, range=300))
    for i in range(0, 3000, 100):
        drive.send(i, failed(f"e{i}", i))
    assert [c[1] for c in drive.changes] == ["Triggered"]


def test_no_data_holds_the_state_and_a_change_needs_firing_for_of_data() -> None:
    drive = Driver(failures(">", 100, value={"field": "payload.ms"}, aggregation="mean"))
    drive.send(0, plain("a", "job.failed", 0, payload={"ms": 500}))
    drive.send(200, plain("b", "job.failed", 200, payload={"ms": 300}))
    assert drive.until(300) == [(300.0, "Triggered", 400.0, {}, None)]
    # a leaves at 600 (mean 300), b at 800: no data from then on, and the state holds
    assert drive.until(3000) == []
    # data again, fine: Resolved once that has held for firing_for
    drive.send(3000, plain("c", "job.failed", 3000, payload={"ms": 1}))
    assert drive.until(3299) == []
    assert drive.until(3300) == [(3300.0, "Resolved", 1.0, {}, None)]


def test_no_data_clears_a_pending_breach() -> None:
    drive = Driver(failures(">", 100, range=300, value={"field": "payload.ms"}, aggregation="max"))
    drive.send(0, plain("a", "job.failed", 0, payload={"ms": 500}))
    # the sample leaves at 300, just when the breach would have held for 300 s: no firing
    assert drive.until(300) == []
    drive.send(310, plain("b", "job.failed", 310, payload={"ms": 500}))
    drive.send(400, plain("c", "job.failed", 400, payload={"ms": 500}))
    assert drive.until(609) == []
    assert drive.until(610) == [(610.0, "Triggered", 500.0, {}, None)]


def test_count_of_an_empty_window_is_zero_so_an_absence_can_trigger() -> None:
    drive = Driver(failures("<", 1))
    # no event at all: 0 < 1 from the load on
    assert drive.until(300) == [(300.0, "Triggered", 0.0, {}, None)]
    drive.send(400, failed("a", 400))
    assert drive.until(700) == [(700.0, "Resolved", 1.0, {}, None)]


def test_each_group_has_its_own_state_and_labels() -> None:
    drive = Driver(failures(">", 1, for_each=["prefect.resource.id"]))
    a, b = {"prefect.resource.id": "job.a"}, {"prefect.resource.id": "job.b"}
    drive.send(0, failed("a1", 0, "job.a"), failed("a2", 0, "job.a"), failed("b1", 0, "job.b"))
    drive.send(100, failed("a3", 100, "job.a"), failed("b2", 100, "job.b"))
    assert drive.until(300) == [(300.0, "Triggered", 3.0, a, None)]
    assert drive.until(400) == [(400.0, "Triggered", 2.0, b, None)]
    # 600: a1, a2 and b1 leave: both groups at 1, recovering; Resolved together at 900
    resolved = sorted(drive.until(900), key=lambda c: c[3]["prefect.resource.id"])
    assert resolved == [(900.0, "Resolved", 0.0, a, None), (900.0, "Resolved", 0.0, b, None)]


def test_a_group_back_to_resolved_with_nothing_held_is_forgotten() -> None:
    drive = Driver(failures(">", 1, for_each=["prefect.resource.id"], range=300))
    for k in range(50):
        drive.send(k, failed(f"e{k}", k, f"job.{k}"))
    assert drive.engine.metrics.live_groups() == 50
    drive.until(400)
    assert drive.engine.metrics.live_groups() == 0
    assert not drive.kinds() & state.METRIC_KINDS


def test_firing_for_is_reached_exactly_and_a_change_made_by_an_event_carries_it() -> None:
    drive = Driver(failures(">", 1))
    drive.send(0.5, failed("a", 0.5), failed("b", 0.5))  # breaching since 0.5
    assert drive.engine.next_due() == T0 + 300.5
    # the writer takes up an event batch before it runs the deadline that is already due: the
    # batch's evaluation makes the change, with the event that fed it
    step = drive.engine.process([failed("c", 300.7)], T0 + 300.7)
    assert [(f.state.value, f.triggering_value, f.triggering_event_id) for f in step.firings] == [
        ("Triggered", 3.0, "c")
    ]
    assert drive.until(400) == []


def test_a_restart_mid_breach_triggers_once_at_the_same_time() -> None:
    drive = Driver(failures(">", 1))
    drive.send(10, failed("a", 10), failed("b", 10))
    drive.restart(200)
    assert drive.until(309) == []
    assert drive.until(310) == [(310.0, "Triggered", 2.0, {}, None)]


def test_a_restart_while_triggered_fires_no_second_triggered_and_the_resolved_still_comes() -> None:
    drive = Driver(failures(">", 1))
    drive.send(0, failed("a", 0), failed("b", 0))
    assert drive.until(300) == [(300.0, "Triggered", 2.0, {}, None)]
    drive.send(350, failed("c", 350))
    drive.restart(400)  # triggered, the window holding a, b and c
    assert drive.until(599) == []
    # 600: a, b leave (1 left): recovering; Resolved 300 s later
    assert drive.until(900) == [(900.0, "Resolved", 1.0, {}, None)]


def test_a_restart_keeps_outcomes_and_open_intervals() -> None:
    trigger = {
        "type": "metric",
        "metric": {"name": "duration", "threshold": 100, "operator": ">", "range": 3600},
    }
    drive = Driver(trigger)
    drive.send(0, run_event("s", "Running", "r1", 0))
    drive.restart(100)  # r1's interval is open across the restart
    drive.send(500, run_event("e", "Completed", "r1", 500))
    assert drive.until(800) == [(800.0, "Triggered", 500.0, {}, None)]
    successes = {
        "type": "metric",
        "metric": {"name": "successes", "threshold": 1, "operator": "<", "range": 3600},
    }
    again = Driver(successes)
    again.send(0, run_event("p", "Pending", "r1", 0))
    again.restart(10)
    again.send(20, run_event("f", "Failed", "r1", 20))
    again.restart(30)
    assert again.until(320) == [(320.0, "Triggered", 0.0, {}, None)]


def test_records_left_by_a_resolved_group_are_deleted() -> None:
    drive = Driver(failures(">", 1, range=300))
    drive.send(0, failed("a", 0), failed("b", 0))
    assert state.METRIC_SAMPLES in drive.kinds()
    drive.until(300)
    assert state.METRIC_STATE not in drive.kinds()  # back to Resolved-and-idle at 300
    assert state.METRIC_SAMPLES not in drive.kinds()


def test_a_window_sliding_past_many_samples_is_evaluated_once_a_second() -> None:
    drive = Driver(failures(">", 1000, range=300))
    for i in range(100):  # ten a second for 10 s
        drive.send(i / 10, failed(f"e{i}", i / 10))
    wakes = []
    while (due := drive.engine.next_due()) is not None:
        wakes.append(round(due - T0, 6))
        drive.until(due - T0)
    assert wakes[0] == 300.0  # when the oldest sample leaves
    assert all(later - earlier >= 1.0 for earlier, later in zip(wakes, wakes[1:], strict=False))
    assert wakes == [300.0 + k for k in range(11)]  # not 100 evaluations: 11, the last at 310
