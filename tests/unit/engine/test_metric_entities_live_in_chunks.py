"""Runs and intervals in flight are written in the step's chunk, never as rows of their own, and
come back from a restart exactly: closed ones stay closed, old ``metric_entity`` rows are read."""

from __future__ import annotations

import uuid

from automations.engine.state import StateRecord
from tests.unit.engine.helpers import T0
from tests.unit.engine.metric_helpers import Driver, metric, plain, run_event

BETWEEN_COUNT = {
    "type": "metric",
    "metric": {
        "name": "orders shipped",
        "value": {"between": {"from": ["order.placed"], "to": ["order.shipped"]}},
        "aggregation": "count",
        "threshold": 1,
        "operator": ">",
        "range": 3600,
        "firing_for": 300,
    },
}


def test_runs_in_flight_add_no_rows_of_their_own() -> None:
    drive = Driver(metric("duration", 100, ">", range=3600))
    runs = [str(uuid.uuid4()) for _ in range(50)]
    drive.send(0, *(run_event(f"s{k}", "Running", run, 0) for k, run in enumerate(runs)))
    kinds = [r.kind for r in drive.store.rows.values()]
    assert kinds.count("metric_samples") == 1
    assert "metric_entity" not in kinds


def test_a_closed_interval_stays_closed_after_a_restart() -> None:
    drive = Driver(BETWEEN_COUNT)
    drive.send(0, plain("p1", "order.placed", 0, "order.1"))
    drive.send(10, plain("s1", "order.shipped", 10, "order.1"))
    drive.restart(20)
    # were the interval open again, this would measure a second one: a count of 2 breaches
    drive.send(30, plain("s2", "order.shipped", 30, "order.1"))
    assert drive.until(1000) == []


def test_an_open_interval_survives_a_restart_and_is_measured_once() -> None:
    drive = Driver(BETWEEN_COUNT)
    drive.send(0, plain("p1", "order.placed", 0, "order.1"))
    drive.send(5, plain("p2", "order.placed", 5, "order.2"))
    drive.restart(20)
    drive.send(
        30, plain("s1", "order.shipped", 30, "order.1"), plain("s2", "order.shipped", 31, "order.2")
    )
    assert drive.until(400)[0][1:3] == ("Triggered", 2.0)


def test_metric_entity_rows_of_an_older_release_are_read_and_replaced() -> None:
    run = str(uuid.uuid4())
    drive = Driver(metric("duration", 100, ">", range=3600))
    trigger_id = drive.automation.trigger.id
    legacy = StateRecord(
        drive.automation.id, trigger_id, "metric_entity", f'["prefect.flow-run.{run}"]', {"t": T0}
    )
    drive.store.rows[legacy.identity] = legacy
    drive.restart(10)
    drive.send(500, run_event("e", "Completed", run, 500))
    kinds = [r.kind for r in drive.store.rows.values()]
    assert "metric_entity" not in kinds
    assert drive.until(800) == [(800.0, "Triggered", 500.0, {}, None)]
