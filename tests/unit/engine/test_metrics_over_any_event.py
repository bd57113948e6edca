"""Metrics of one's own: any events, a count, a rate, a payload field or the time between two
events, aggregated by count, rate, sum, mean, min, max or a percentile, per group."""

from __future__ import annotations

from typing import Any

import pytest

from automations.domain import triggers
from tests.unit.engine.helpers import T0, automation
from tests.unit.engine.metric_helpers import Driver, plain


def own(aggregation: str, operator: str, threshold: float, **query: Any) -> dict[str, Any]:
    return {
        "type": "metric",
        "match": {"prefect.resource.id": "shop.*"},
        "metric": {
            "name": "orders",
            "events": ["order.*"],
            "aggregation": aggregation,
            "threshold": threshold,
            "operator": operator,
            "range": 600,
            "firing_for": 300,
            **query,
        },
    }


def order(event_id: str, at: float, amount: Any = None, *, name: str = "order.paid") -> Any:
    payload = {} if amount is None else {"amount": amount}
    return plain(event_id, name, at, "shop.eu", payload=payload)


AMOUNTS = (5, 1, 4, 2, 3, 100, 7, 6, 9, 8)
"""Ten amounts: sorted 1..9 and 100."""


@pytest.mark.parametrize(
    ("aggregation", "value"),
    [
        ("count", 10.0),
        ("rate", 10 / 600),
        ("sum", 145.0),
        ("mean", 14.5),
        ("min", 1.0),
        ("max", 100.0),
        ("p50", 5.0),  # nearest rank: the 5th of 10
        ("p90", 9.0),  # the 9th
        ("p95", 100.0),  # ceil(9.5) = the 10th
        ("p99", 100.0),
    ],
)
def test_each_aggregation_of_a_payload_field(aggregation: str, value: float) -> None:
    field = {} if aggregation in ("count", "rate") else {"value": {"field": "payload.amount"}}
    drive = Driver(own(aggregation, ">", 0, **field))
    drive.send(0, *(order(f"o{i}", 0, amount) for i, amount in enumerate(AMOUNTS)))
    ((at, state, seen, _, _),) = drive.until(300)
    assert (at, state) == (300.0, "Triggered")
    assert seen == pytest.approx(value, rel=0, abs=0)


def test_events_without_a_number_in_the_field_are_skipped() -> None:
    drive = Driver(own("count", ">=", 3, value={"field": "payload.amount"}))
    drive.send(0, order("a", 0, 1), order("b", 0, "2.5"), order("c", 0, "x"), order("d", 0))
    drive.send(1, order("e", 1, True), order("f", 1, {"n": 1}))
    drive.send(100, order("g", 100, 7))  # the third number
    assert drive.until(399) == []
    assert drive.until(400) == [(400.0, "Triggered", 3.0, {}, None)]


def test_a_label_or_a_related_label_can_be_the_field() -> None:
    drive = Driver(own("max", ">", 10, value={"field": "shop.items"}))
    event = order("a", 0)
    event.resource = {**event.resource, "shop.items": "12"}
    drive.send(0, event)
    assert drive.until(300) == [(300.0, "Triggered", 12.0, {}, None)]


def test_time_between_two_events_of_one_entity() -> None:
    between = {"between": {"from": ["order.placed"], "to": ["order.shipped"], "key": "order.id"}}
    drive = Driver(own("p90", ">", 3600, value=between, range=86400))

    def step(event_id: str, name: str, at: float, order_id: str) -> Any:
        event = order(event_id, at, name=name)
        event.resource = {**event.resource, "order.id": order_id}
        return event

    drive.send(0, step("p1", "order.placed", 0, "A"), step("p2", "order.placed", 0, "B"))
    drive.send(100, step("s1", "order.shipped", 100, "A"))  # 100 s
    drive.send(5000, step("s2", "order.shipped", 5000, "B"))  # 5000 s
    drive.send(5000, step("s3", "order.shipped", 5000, "C"))  # never placed: no sample
    # p90 of (100, 5000): rank ceil(1.8) = 2 -> 5000 > 3600 since 5000
    assert drive.until(5300) == [(5300.0, "Triggered", 5000.0, {}, None)]


def test_the_same_event_as_start_and_end_measures_the_gaps_between_consecutive_events() -> None:
    gap = {"between": {"from": ["heartbeat"], "to": ["heartbeat"]}}
    drive = Driver(own("max", ">", 90, value=gap, events=["heartbeat"], range=3600))
    for i, at in enumerate((0, 60, 120, 300, 330)):
        drive.send(at, plain(f"h{i}", "heartbeat", at, "shop.eu"))
    assert drive.until(600) == [(600.0, "Triggered", 180.0, {}, None)]


def test_an_interval_left_open_is_forgotten_after_a_day() -> None:
    between = {"between": {"from": ["order.placed"], "to": ["order.shipped"]}}
    drive = Driver(own("max", ">", 0, value=between, range=300))
    drive.send(0, order("p", 0, name="order.placed"))
    drive.until(86401)
    group = drive.engine.metrics.live_groups()
    drive.send(90000, order("s", 90000, name="order.shipped"))
    assert group == 0
    assert drive.changes == []


def test_outcomes_of_ones_own_events() -> None:
    outcome = {"outcome": {"start": ["deploy.started"], "failure": ["deploy.failed"]}}
    drive = Driver(own("mean", "<", 0.5, value=outcome, events=["deploy.*"], range=3600))
    for i in range(3):
        drive.send(i, plain(f"s{i}", "deploy.started", i, f"shop.{i}"))
    drive.send(10, plain("f0", "deploy.failed", 10, "shop.0"))
    drive.send(11, plain("f1", "deploy.failed", 11, "shop.1"))
    assert drive.until(311) == [(311.0, "Triggered", 1 / 3, {}, None)]
    drive.send(400, plain("ok1", "deploy.note", 400, "shop.1"))  # no failure: a success again
    assert drive.until(700) == [(700.0, "Resolved", 2 / 3, {}, None)]


def test_grouping_by_a_related_label_watches_each_deployment_separately() -> None:
    trigger = own("count", ">", 1, for_each=["related:deployment:prefect.resource.name"])

    def by(event_id: str, at: float, deployment: str) -> Any:
        event = order(event_id, at)
        event.related = (
            {
                "prefect.resource.id": f"prefect.deployment.{deployment}",
                "prefect.resource.role": "deployment",
                "prefect.resource.name": deployment,
            },
        )
        return event

    drive = Driver(trigger)
    drive.send(0, by("a", 0, "etl"), by("b", 0, "etl"), by("c", 0, "report"))
    label = "related:deployment:prefect.resource.name"
    assert drive.until(300) == [(300.0, "Triggered", 2.0, {label: "etl"}, None)]


def test_a_metric_child_feeds_a_compound_trigger_with_its_triggered_firings_only() -> None:
    compound = {
        "type": "compound",
        "require": "all",
        "triggers": [
            own("count", ">", 1),
            {"type": "event", "expect": ["alarm"], "match": {"prefect.resource.id": "shop.*"}},
        ],
    }
    drive = Driver(compound)
    drive.send(0, order("a", 0), order("b", 0))
    assert drive.until(300) == []  # the metric child triggered: one of two children
    drive.send(400, plain("x", "alarm", 400, "shop.eu"))
    ((at, state, value, labels, event_id),) = drive.changes
    assert (at, state, value, labels, event_id) == (400.0, "Triggered", None, {}, "x")
    drive.until(2000)  # the metric child resolves at 900: nothing for the compound trigger
    assert len(drive.changes) == 1


def test_a_metric_child_is_a_step_of_a_sequence_trigger_in_order() -> None:
    sequence = {
        "type": "sequence",
        "within": 3600,
        "triggers": [
            {"type": "event", "expect": ["alarm"], "match": {"prefect.resource.id": "shop.*"}},
            own("count", ">", 1),
        ],
    }
    drive = Driver(sequence)
    drive.send(0, order("a", 0), order("b", 0))
    assert drive.until(1000) == []  # the metric step triggered (at 300) before the first step
    drive.send(1000, plain("x", "alarm", 1000, "shop.eu"))
    drive.send(1010, order("c", 1010), order("d", 1010))
    assert drive.until(3000) == [(1310.0, "Triggered", None, {}, None)]


def test_an_update_that_keeps_the_metric_keeps_its_state_and_a_changed_one_starts_over() -> None:
    drive = Driver(own("count", ">", 1))
    drive.send(0, order("a", 0), order("b", 0))
    same = automation(own("count", ">", 1), automation_id="m1")
    drive.engine.load_automation(same, now=T0 + 100)
    assert drive.until(300) == [(300.0, "Triggered", 2.0, {}, None)]
    old_id = drive.automation.trigger.id
    assert any(r.trigger_id == old_id for r in drive.store.records_of("m1"))
    changed = automation(own("count", ">", 1, range=900), automation_id="m1")
    assert isinstance(changed.trigger, triggers.MetricTrigger)
    assert changed.trigger.id != old_id
    drive.engine.load_automation(changed, now=T0 + 310)
    drive.until(320)
    assert not any(r.trigger_id == old_id for r in drive.store.records_of("m1"))
    assert drive.until(5000) == []  # the new trigger starts from nothing: a and b are gone


def test_late_events_outside_the_window_are_not_counted() -> None:
    drive = Driver(own("count", ">", 1))
    drive.send(1000, order("a", 1000))
    drive.send(1000, plain("b", "order.paid", 1000, "shop.eu", occurred=300))  # 700 s late
    assert drive.until(2000) == []
