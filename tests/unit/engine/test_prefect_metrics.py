"""Prefect's three metrics (successes, duration, lateness) from flow-run state events."""

from __future__ import annotations

import pytest

from tests.unit.engine.metric_helpers import Driver, metric, run_event


def test_successes_is_the_fraction_of_runs_gone_pending_whose_latest_state_is_no_failure() -> None:
    drive = Driver(metric("successes", 0.9, "<", range=600, firing_for=300))
    drive.send(10, run_event("p1", "Pending", "r1", 10), run_event("p2", "Pending", "r2", 10))
    drive.send(20, run_event("p3", "Pending", "r3", 20), run_event("p4", "Pending", "r4", 20))
    # r1 fails at 30: 3 of 4 runs (the ones still in flight count) are no failure
    assert drive.send(30, run_event("f1", "Failed", "r1", 30)) == []
    assert drive.until(329) == []
    assert drive.until(330) == [(330.0, "Triggered", 0.75, {}, None)]


def test_successes_counts_the_latest_state_so_a_retried_run_that_completes_recovers() -> None:
    drive = Driver(metric("successes", 0.9, "<", range=3600, firing_for=300))
    drive.send(0, run_event("p1", "Pending", "r1", 0), run_event("p2", "Pending", "r2", 0))
    drive.send(10, run_event("f1", "Failed", "r1", 10))
    assert drive.until(310) == [(310.0, "Triggered", 0.5, {}, None)]
    drive.send(400, run_event("ar", "AwaitingRetry", "r1", 400))  # no failure any more
    assert drive.until(699) == []
    assert drive.until(700) == [(700.0, "Resolved", 1.0, {}, None)]


@pytest.mark.parametrize(
    ("final", "failure"),
    [("Failed", True), ("Crashed", True), ("TimedOut", True), ("Cancelled", False)],
)
def test_failed_crashed_and_timed_out_are_failures_cancelled_is_not(
    final: str, failure: bool
) -> None:
    drive = Driver(metric("successes", 1.0, "<", range=600, firing_for=300))
    drive.send(0, run_event("p", "Pending", "r1", 0))
    drive.send(5, run_event("x", final, "r1", 5))
    expected = [(305.0, "Triggered", 0.0, {}, None)] if failure else []
    assert drive.until(400) == expected


def test_a_heartbeat_after_a_failure_leaves_the_run_failed() -> None:
    drive = Driver(metric("successes", 1.0, "<", range=600, firing_for=300))
    drive.send(0, run_event("p", "Pending", "r1", 0), run_event("f", "Failed", "r1", 0))
    drive.send(100, run_event("h", "heartbeat", "r1", 100))
    assert drive.until(300) == [(300.0, "Triggered", 0.0, {}, None)]


def test_a_run_counts_while_its_pending_event_is_in_the_window() -> None:
    drive = Driver(metric("successes", 0.5, "<", range=300, firing_for=300))
    drive.send(0, run_event("p1", "Pending", "r1", 0), run_event("f1", "Failed", "r1", 0))
    drive.send(100, run_event("p2", "Pending", "r2", 100))
    # (0, 300]: r1 failed, r2 fine = 0.5, no breach of < 0.5; at 300 r1 leaves: 1.0
    drive.send(200, run_event("p3", "Pending", "r3", 200), run_event("f3", "Failed", "r3", 200))
    assert drive.until(800) == []


def test_duration_is_the_mean_from_the_last_running_to_a_terminal_state() -> None:
    drive = Driver(metric("duration", 100, ">", range=3600, firing_for=300))
    drive.send(0, run_event("a1", "Running", "a", 0), run_event("b1", "Running", "b", 0))
    drive.send(50, run_event("a2", "Completed", "a", 50))  # 50 s
    drive.send(100, run_event("b2", "Failed", "b", 100), run_event("b3", "Retrying", "b", 100))
    # b failed after 100 s, then ran again from 100 to 400 (the last Running counts): 300 s
    drive.send(400, run_event("b4", "Completed", "b", 400))
    assert drive.until(699) == []
    # samples 50, 100, 300: mean 150 > 100 since 400
    assert drive.until(700) == [(700.0, "Triggered", 150.0, {}, None)]


def test_duration_counts_runs_that_ended_in_the_window_and_a_run_still_running_has_none() -> None:
    drive = Driver(metric("duration", 10, ">", range=300, firing_for=300, aggregation="max"))
    drive.send(0, run_event("a1", "Running", "a", 0), run_event("b1", "Running", "b", 0))
    drive.send(20, run_event("a2", "Completed", "a", 20))
    assert drive.until(320) == []  # 20 s > 10 from 20 to 320, but a leaves the window at 320
    assert drive.changes == []


def test_lateness_is_the_mean_time_spent_late_before_running_or_crashed() -> None:
    drive = Driver(metric("lateness", 60, ">", range=3600, firing_for=300))
    drive.send(0, run_event("l1", "Late", "r1", 0), run_event("l2", "Late", "r2", 0))
    drive.send(30, run_event("s1", "Pending", "r1", 30))
    drive.send(40, run_event("u1", "Running", "r1", 40))  # late 40 s (Late -> Running)
    drive.send(100, run_event("c2", "Crashed", "r2", 100))  # late 100 s
    drive.send(100, run_event("u3", "Running", "r3", 100))  # never late: no sample
    assert drive.until(400) == [(400.0, "Triggered", 70.0, {}, None)]


def test_a_fully_stuck_pool_shows_no_lateness_until_its_runs_start() -> None:
    drive = Driver(metric("lateness", 60, ">", range=3600, firing_for=300))
    drive.send(0, run_event("l1", "Late", "r1", 0))
    assert drive.until(3000) == []


def test_a_prefect_metric_takes_the_extension_fields_it_sets() -> None:
    drive = Driver(metric("duration", 100, ">=", range=3600, firing_for=300, aggregation="p50"))
    for i, seconds in enumerate((10, 100, 1000)):
        drive.send(
            i,
            run_event(f"s{i}", "Running", f"r{i}", i),
            run_event(f"e{i}", "Completed", f"r{i}", i, occurred=i + seconds),
        )
    # samples 10, 100, 1000 (one run's end occurred "in the future": taken at the clock) -> p50 100
    assert drive.until(400)[0][:3] == (302.0, "Triggered", 100.0)


def test_events_outside_match_do_not_feed_the_metric() -> None:
    trigger = metric("successes", 1.0, "<", range=600, firing_for=300)
    trigger["match_related"] = {"prefect.resource.id": "prefect.deployment.d2"}
    drive = Driver(trigger)
    drive.send(0, run_event("p", "Pending", "r1", 0), run_event("f", "Failed", "r1", 0))
    assert drive.until(600) == []
    drive.send(600, run_event("q", "Pending", "r2", 600, deployment="d2"))
    drive.send(601, run_event("g", "Failed", "r2", 601, deployment="d2"))
    assert drive.until(1000) == [(901.0, "Triggered", 0.0, {}, None)]
