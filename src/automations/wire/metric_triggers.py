"""Metric triggers between ``automation_pb2.MetricTrigger`` and Prefect's metric trigger JSON.

Like every trigger, a message is printed as Prefect's JSON (:func:`metric_trigger_to_json`) and
validated by ``domain.metric_json``; output goes from the domain trigger to the message directly
(:func:`metric_trigger_to_proto`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from automations.domain import durations, errors, metric_queries, triggers
from automations.v1 import automation_pb2
from automations.wire import structs

_OPERATORS = {
    automation_pb2.METRIC_OPERATOR_LESS_THAN: "<",
    automation_pb2.METRIC_OPERATOR_LESS_THAN_OR_EQUAL: "<=",
    automation_pb2.METRIC_OPERATOR_GREATER_THAN: ">",
    automation_pb2.METRIC_OPERATOR_GREATER_THAN_OR_EQUAL: ">=",
}
_OPERATORS_TO_PROTO = {name: value for value, name in _OPERATORS.items()}
_AGGREGATIONS = {
    getattr(automation_pb2, f"METRIC_AGGREGATION_{name.upper()}"): name
    for name in metric_queries.AGGREGATIONS
}
_AGGREGATIONS_TO_PROTO = {name: value for value, name in _AGGREGATIONS.items()}


def metric_trigger_to_json(
    trigger: automation_pb2.MetricTrigger,
    field: str,
    spec_to_json: Callable[[automation_pb2.ResourceSpecification], dict[str, Any]],
) -> dict[str, Any]:
    """Prints a ``MetricTrigger`` message as Prefect's metric trigger JSON (not validated).

    Raises:
        errors.InvalidArgument: A part of the message has no JSON form (an unknown operator or
            aggregation, ``count: false``).
    """
    related: Any
    if not trigger.match_related:
        related = {}
    elif len(trigger.match_related) == 1:
        related = spec_to_json(trigger.match_related[0])
    else:
        related = [spec_to_json(spec) for spec in trigger.match_related]
    out: dict[str, Any] = {
        "type": "metric",
        "posture": "Metric",
        "match": spec_to_json(trigger.match),
        "match_related": related,
    }
    if trigger.HasField("metric"):
        out["metric"] = _query_to_json(trigger.metric, f"{field}.metric")
    return out


def _query_to_json(query: automation_pb2.MetricTriggerQuery, field: str) -> dict[str, Any]:
    operator = _OPERATORS.get(query.operator)
    out: dict[str, Any] = {"name": query.name, "threshold": query.threshold, "operator": operator}
    if query.HasField("range"):
        out["range"] = durations.format_seconds(structs.duration_to_seconds(query.range))
    if query.HasField("firing_for"):
        out["firing_for"] = durations.format_seconds(structs.duration_to_seconds(query.firing_for))
    if query.events:
        out["events"] = list(query.events)
    if query.HasField("value"):
        out["value"] = _value_to_json(query.value, f"{field}.value")
    if query.aggregation:
        aggregation = _AGGREGATIONS.get(query.aggregation)
        if aggregation is None:
            raise errors.InvalidArgument(
                f"{field}.aggregation", f"unknown aggregation {query.aggregation}"
            )
        out["aggregation"] = aggregation
    if query.for_each:
        out["for_each"] = list(query.for_each)
    return out


def _value_to_json(value: automation_pb2.MetricValue, field: str) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "count":
        if not value.count:
            raise errors.InvalidArgument(f"{field}.count", "must be true when set")
        return "count"
    if kind == "field":
        return {"field": value.field}
    if kind == "between":
        between: dict[str, Any] = {
            "from": list(getattr(value.between, "from")),
            "to": list(value.between.to),
        }
        if value.between.key:
            between["key"] = value.between.key
        return {"between": between}
    if kind == "outcome":
        outcome: dict[str, Any] = {
            "start": list(value.outcome.start),
            "failure": list(value.outcome.failure),
        }
        if value.outcome.success:
            outcome["success"] = list(value.outcome.success)
        if value.outcome.key:
            outcome["key"] = value.outcome.key
        return {"outcome": outcome}
    raise errors.InvalidArgument(field, "must set one of count, field, between or outcome")


def metric_trigger_to_proto(
    trigger: triggers.MetricTrigger,
    target: automation_pb2.MetricTrigger,
    spec_to_proto: Callable[[automation_pb2.ResourceSpecification, triggers.ResourceSpec], None],
) -> None:
    """Fills ``target`` from a domain metric trigger."""
    target.SetInParent()
    spec_to_proto(target.match, trigger.match)
    for spec in trigger.match_related:
        spec_to_proto(target.match_related.add(), spec)
    query = trigger.metric
    message = target.metric
    message.name = query.name
    message.threshold = query.threshold
    message.operator = _OPERATORS_TO_PROTO[query.operator]
    structs.set_duration(message.range, query.range)
    structs.set_duration(message.firing_for, query.firing_for)
    if query.events is not None:
        message.events.extend(query.events)
    if query.value is not None:
        _value_to_proto(query.value, message.value)
    if query.aggregation is not None:
        message.aggregation = _AGGREGATIONS_TO_PROTO[query.aggregation]
    message.for_each.extend(query.for_each)


def _value_to_proto(spec: metric_queries.ValueSpec, message: automation_pb2.MetricValue) -> None:
    if isinstance(spec, metric_queries.Count):
        message.count = True
    elif isinstance(spec, metric_queries.FieldValue):
        message.field = spec.path
    elif isinstance(spec, metric_queries.Between):
        getattr(message.between, "from").extend(spec.start)
        message.between.to.extend(spec.end)
        message.between.key = spec.key
    else:
        message.outcome.start.extend(spec.start)
        message.outcome.failure.extend(spec.failure)
        if spec.success is not None:
            message.outcome.success.extend(spec.success)
        message.outcome.key = spec.key
