"""Metric triggers through the protos: Prefect's JSON and the extension round-trip, errors keep
Prefect's paths; metric firings carry their state and value on the wire."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from automations.api import automation_service
from automations.domain import errors, firings, prefect_json
from automations.v1 import automation_pb2, automation_service_pb2, firing_pb2
from automations.wire import automations as wire_automations
from automations.wire import firings as wire_firings
from tests import factories

SUCCESSES = factories.prefect_metric_trigger()
OWN = {
    "type": "metric",
    "metric": {
        "name": "slow orders",
        "threshold": 1.5,
        "operator": ">=",
        "range": 86400,
        "firing_for": 600,
        "events": ["order.*"],
        "value": {
            "between": {"from": ["order.placed"], "to": ["order.shipped"], "key": "order.id"}
        },
        "aggregation": "p99",
        "for_each": ["related:customer:prefect.resource.id"],
    },
}


def automation(trigger: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "metric",
        "trigger": trigger,
        "actions": [],
        "actions_on_trigger": [{"type": "do-nothing"}],
        "actions_on_resolve": [{"type": "do-nothing"}],
    }


@pytest.mark.parametrize(
    "trigger",
    [
        SUCCESSES,
        OWN,
        {"type": "sequence", "within": None, "triggers": [SUCCESSES, OWN]},
        {"type": "compound", "require": "any", "within": 600, "triggers": [OWN, SUCCESSES]},
        {
            "type": "metric",
            "metric": {
                "name": "n",
                "events": ["x"],
                "value": "count",
                "threshold": 1,
                "operator": "<",
            },
        },
        {
            "type": "metric",
            "metric": {
                "name": "amount",
                "events": ["x"],
                "value": {"field": "payload.a"},
                "threshold": 1,
                "operator": ">",
            },
        },
        {
            "type": "metric",
            "metric": {
                "name": "deploys",
                "value": {
                    "outcome": {"start": ["s"], "failure": ["f"], "success": ["ok"], "key": "k"}
                },
                "threshold": 0.5,
                "operator": "<=",
            },
        },
    ],
)
def test_a_metric_trigger_round_trips_through_the_protos(trigger: dict[str, Any]) -> None:
    data = automation(trigger)
    message = wire_automations.automation_proto_from_prefect_json(data)
    printed = wire_automations.automation_to_prefect_json(message)
    assert (
        prefect_json.parse_automation(printed).trigger
        == prefect_json.parse_automation(data).trigger
    )
    wire = automation_pb2.Automation.FromString(message.SerializeToString())
    again = wire_automations.automation_from_proto(wire)
    assert again.trigger == prefect_json.parse_automation(data).trigger


def test_the_proto_says_metric_and_its_enums() -> None:
    message = wire_automations.automation_proto_from_prefect_json(automation(OWN))
    assert message.trigger.WhichOneof("kind") == "metric"
    query = message.trigger.metric.metric
    assert query.operator == automation_pb2.METRIC_OPERATOR_GREATER_THAN_OR_EQUAL
    assert query.aggregation == automation_pb2.METRIC_AGGREGATION_P99
    assert (query.range.seconds, query.firing_for.seconds) == (86400, 600)


def test_a_bad_metric_from_a_proto_is_named_by_prefects_path() -> None:
    message = wire_automations.automation_proto_from_prefect_json(automation(SUCCESSES))
    message.trigger.metric.metric.range.seconds = 60
    with pytest.raises(errors.InvalidArgument) as caught:
        wire_automations.automation_from_proto(message)
    assert caught.value.field == "trigger.metric.range"
    assert caught.value.description == "The minimum range is 300 seconds (5 minutes)"
    message.trigger.metric.metric.operator = automation_pb2.METRIC_OPERATOR_UNSPECIFIED
    with pytest.raises(errors.InvalidArgument) as caught:
        wire_automations.automation_from_proto(message)
    assert caught.value.field == "trigger.metric.operator"


def test_a_metric_firing_carries_its_state_and_value_to_proto_and_json() -> None:
    firing = firings.Firing(
        id="f1",
        automation_id="a1",
        trigger_id="t1",
        trigger_type="metric",
        posture="Metric",
        triggered=1_000.0,
        triggering_event=None,
        triggering_labels={"prefect.resource.id": "prefect.deployment.d1"},
        state=firings.FiringState.RESOLVED,
        triggering_value=0.95,
    )
    message = wire_firings.firing_to_proto(firing)
    assert message.state == firing_pb2.FIRING_STATE_RESOLVED
    assert message.trigger_type == firing_pb2.TRIGGER_TYPE_METRIC
    assert message.posture == automation_pb2.POSTURE_METRIC
    shown = wire_firings.firing_to_json(message)
    assert (shown["state"], shown["triggering_value"], shown["posture"]) == (
        "Resolved",
        0.95,
        "Metric",
    )
    event_firing = wire_firings.firing_to_json(
        wire_firings.firing_to_proto(
            firings.Firing("f2", "a1", "t2", "event", "Reactive", 1.0, None)
        )
    )
    assert (event_firing["state"], event_firing["triggering_value"]) == ("Triggered", None)


def test_simulate_automation_returns_resolutions_beside_firings() -> None:
    trigger = {
        "type": "metric",
        "metric": {
            "name": "fails",
            "events": ["job.failed"],
            "threshold": 1,
            "operator": ">",
            "range": 600,
        },
    }
    request = automation_service_pb2.SimulateAutomationRequest(
        automation=wire_automations.automation_proto_from_prefect_json(automation(trigger))
    )
    for i, at in enumerate((0, 1)):
        step = request.events.add()
        step.offset.FromSeconds(at)
        step.event.id = f"e{i}"
        step.event.event = "job.failed"
        step.event.resource.labels["prefect.resource.id"] = "job.1"
    request.until.FromSeconds(1000)
    service = automation_service.AutomationService(None, None)  # type: ignore[arg-type]
    reply = asyncio.run(service.SimulateAutomation(request, None))
    assert [(f.fire_time.seconds, f.state, f.triggering_value) for f in reply.firings] == [
        (301, firing_pb2.FIRING_STATE_TRIGGERED, 2.0)
    ]
    assert [(f.fire_time.seconds, f.state, f.triggering_value) for f in reply.resolutions] == [
        (900, firing_pb2.FIRING_STATE_RESOLVED, 0.0)
    ]
