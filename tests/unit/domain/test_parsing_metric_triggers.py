"""Prefect's metric trigger JSON is accepted as it is, with Prefect's validation, and the
extension's fields round-trip."""

from __future__ import annotations

from typing import Any

import pytest

from automations.domain import errors, metric_json, metric_queries, prefect_json, triggers
from tests import factories

PREFECT_SAMPLE = factories.prefect_metric_trigger()


def automation(trigger: dict[str, Any]) -> dict[str, Any]:
    return {"name": "a", "trigger": trigger, "actions": [], "actions_on_resolve": []}


def parsed(trigger: dict[str, Any]) -> triggers.MetricTrigger:
    result = prefect_json.parse_automation(automation(trigger)).trigger
    assert isinstance(result, triggers.MetricTrigger)
    return result


def error(trigger: dict[str, Any]) -> errors.InvalidArgument:
    with pytest.raises(errors.InvalidArgument) as caught:
        prefect_json.parse_automation(automation(trigger))
    return caught.value


def test_prefects_sample_is_accepted_and_prints_back_the_same() -> None:
    trigger = parsed(PREFECT_SAMPLE)
    assert trigger.metric == metric_queries.MetricQuery("successes", 0.9, "<", 3600.0, 300.0)
    assert trigger.match_related == (
        {"prefect.resource.id": ("prefect.tag.production",), "prefect.resource.role": ("tag",)},
    )
    dumped = prefect_json.dump_trigger(trigger)
    assert {k: v for k, v in dumped.items() if k != "id"} == PREFECT_SAMPLE
    assert parsed(dumped) == trigger


def test_a_metric_posture_without_a_type_is_a_metric_trigger() -> None:
    untyped = {k: v for k, v in PREFECT_SAMPLE.items() if k != "type"}
    assert parsed(untyped) == parsed(PREFECT_SAMPLE)


def test_range_and_firing_for_default_to_300_and_durations_may_be_iso_strings() -> None:
    query = {"name": "duration", "threshold": 60, "operator": ">="}
    assert parsed({"type": "metric", "metric": query}).metric.range == 300.0
    trigger = parsed({"type": "metric", "metric": {**query, "range": "PT1H", "firing_for": 600.0}})
    assert (trigger.metric.range, trigger.metric.firing_for) == (3600.0, 600.0)


@pytest.mark.parametrize("key", ["range", "firing_for"])
def test_below_300_seconds_is_refused_with_prefects_message(key: str) -> None:
    query = {"name": "duration", "threshold": 60, "operator": ">=", key: 299}
    refused = error({"type": "metric", "metric": query})
    assert refused.field == f"trigger.metric.{key}"
    assert refused.description == "The minimum range is 300 seconds (5 minutes)"


def test_stored_rows_below_the_minimum_are_read_back() -> None:
    query = {"name": "lateness", "threshold": 60, "operator": ">", "firing_for": 60.0}
    data = automation({"type": "metric", "metric": query})
    stored = prefect_json.parse_automation(data, checked=False).trigger
    assert isinstance(stored, triggers.MetricTrigger)
    assert stored.metric.firing_for == 60.0


def test_the_minimum_follows_the_servers_setting() -> None:
    query = {"name": "lateness", "threshold": 60, "operator": ">", "range": 5, "firing_for": 5}
    try:
        metric_json.minimum_seconds = 5.0
        assert parsed({"type": "metric", "metric": query}).metric.range == 5.0
        refused = error({"type": "metric", "metric": {**query, "range": 4}})
        assert refused.description == "The minimum range is 5 seconds"
    finally:
        metric_json.minimum_seconds = metric_queries.MIN_SECONDS


def test_prefect_clouds_v1_rows_with_empty_event_fields_are_accepted() -> None:
    legacy = {
        **PREFECT_SAMPLE,
        "after": [],
        "expect": [],
        "for_each": [],
        "threshold": 1,
        "within": 0.0,
    }
    assert parsed(legacy) == parsed(PREFECT_SAMPLE)


@pytest.mark.parametrize(
    ("trigger", "field", "says"),
    [
        ({"type": "metric"}, "trigger.metric", "is required"),
        (
            {"type": "metric", "for_each": ["x"], "metric": {}},
            "trigger.for_each",
            "metric.for_each",
        ),
        ({"type": "metric", "posture": "Reactive", "metric": {}}, "trigger.posture", "'Metric'"),
        (
            {"type": "metric", "metric": {"name": "duration", "operator": "<"}},
            "trigger.metric.threshold",
            "is required",
        ),
        (
            {"type": "metric", "metric": {"name": "duration", "threshold": 1, "operator": "=="}},
            "trigger.metric.operator",
            "Input should be '<', '<=', '>' or '>='",
        ),
        (
            {"type": "metric", "metric": {"threshold": 1, "operator": "<"}},
            "trigger.metric.name",
            "Input should be 'lateness', 'duration' or 'successes'",
        ),
        (
            {"type": "metric", "metric": {"name": "success", "threshold": 1, "operator": "<"}},
            "trigger.metric.events",
            "must name the events",
        ),
        (
            {
                "type": "metric",
                "metric": {
                    "name": "x",
                    "events": ["a"],
                    "threshold": 1,
                    "operator": "<",
                    "aggregation": "median",
                },
            },
            "trigger.metric.aggregation",
            "p99",
        ),
        (
            {
                "type": "metric",
                "metric": {
                    "name": "x",
                    "events": ["a"],
                    "threshold": 1,
                    "operator": "<",
                    "value": {"between": {"from": ["a"]}},
                },
            },
            "trigger.metric.value.between.to",
            "at least one event name",
        ),
        (
            {
                "type": "metric",
                "metric": {
                    "name": "x",
                    "events": ["a"],
                    "threshold": 1,
                    "operator": "<",
                    "value": {"gauge": "g"},
                },
            },
            "trigger.metric.value",
            "unknown kind of value",
        ),
    ],
)
def test_each_bad_field_is_named(trigger: dict[str, Any], field: str, says: str) -> None:
    refused = error(trigger)
    assert refused.field == field
    assert says in refused.description


def test_metric_triggers_are_children_of_compound_and_sequence_triggers() -> None:
    for kind, extra in (("compound", {"require": "any"}), ("sequence", {})):
        composite = parsed_any(
            {"type": kind, **extra, "triggers": [PREFECT_SAMPLE, {"expect": ["x"]}]}
        )
        assert isinstance(composite, triggers.CompoundTrigger | triggers.SequenceTrigger)
        assert isinstance(composite.triggers[0], triggers.MetricTrigger)
    refused = error({"type": "sequence", "triggers": [{**PREFECT_SAMPLE, "metric": {}}]})
    assert refused.field == "trigger.triggers[0].metric.name"


def parsed_any(trigger: dict[str, Any]) -> triggers.Trigger:
    return prefect_json.parse_automation(automation(trigger)).trigger


def test_the_extension_round_trips_and_prefects_metrics_are_its_presets() -> None:
    extended = {
        "type": "metric",
        "metric": {
            "name": "order latency",
            "threshold": 3600,
            "operator": ">",
            "range": 86400,
            "firing_for": 600,
            "value": {
                "between": {"from": ["order.placed"], "to": ["order.shipped"], "key": "order.id"}
            },
            "aggregation": "p95",
            "for_each": ["related:customer:prefect.resource.id"],
        },
    }
    trigger = parsed(extended)
    assert parsed(prefect_json.dump_trigger(trigger)) == trigger
    events, value, aggregation = trigger.metric.resolved()
    assert events == ("order.placed", "order.shipped")
    assert value == metric_queries.Between(("order.placed",), ("order.shipped",), "order.id")
    assert aggregation == "p95"
    duration = parsed(
        {"type": "metric", "metric": {"name": "duration", "threshold": 1, "operator": "<"}}
    )
    assert duration.metric.resolved() == metric_queries.PRESETS["duration"]


def test_a_changed_metric_gets_a_new_id_and_an_unchanged_one_keeps_it() -> None:
    again = parsed(dict(PREFECT_SAMPLE))
    assert again.id == parsed(PREFECT_SAMPLE).id
    other = {**PREFECT_SAMPLE, "metric": {**PREFECT_SAMPLE["metric"], "threshold": 0.8}}
    assert parsed(other).id != again.id
