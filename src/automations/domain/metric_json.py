"""Metric triggers in Prefect's JSON, parsed into (and printed from) ``triggers.MetricTrigger``.

Prefect's shape is accepted as it is::

    {"type": "metric", "posture": "Metric", "match": {...}, "match_related": {...},
     "metric": {"name": "successes", "threshold": 0.9, "operator": "<", "range": 3600,
                "firing_for": 300}}

with Prefect's validation: ``name`` (one of Prefect's three metrics unless the query defines its
own, see below), ``threshold`` (a number), ``operator`` (``<``, ``<=``, ``>``, ``>=``), ``range``
and ``firing_for`` (durations, 300 s by default and at least 300 s: "The minimum range is 300
seconds (5 minutes)"). A trigger without ``type`` whose ``posture`` is ``Metric`` is a metric
trigger (Prefect's discriminator). The flat "v1" rows Prefect Cloud once stored carry
``after``, ``expect``, ``for_each``, ``threshold`` and ``within`` beside ``metric``; Prefect ignores
them, and so does this parser as long as they hold those rows' empty values.

The extension (``metric_queries``) adds ``events``, ``value``, ``aggregation`` and ``for_each``
inside ``metric``; see docs/metric-triggers.md for the JSON and examples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from automations.domain import durations, metric_queries, trigger_fields, triggers

_TRIGGER_KEYS = frozenset({"type", "id", "posture", "match", "match_related", "metric"})
_QUERY_KEYS = frozenset(
    {
        "name",
        "threshold",
        "operator",
        "range",
        "firing_for",
        "events",
        "value",
        "aggregation",
        "for_each",
    }
)
_LEGACY_EMPTY: Mapping[str, tuple[object, ...]] = {
    "after": (None, []),
    "expect": (None, []),
    "for_each": (None, []),
    "threshold": (None, 1),
    "within": (None, 0, 0.0),
}
"""Keys of Prefect Cloud's v1 metric rows, ignored when they hold those rows' values."""

minimum_seconds = metric_queries.MIN_SECONDS
"""The smallest ``range`` and ``firing_for`` accepted on create and update (Prefect's 300 s; the
server lowers it with its ``metric_minimum_seconds`` setting, for tests and demonstrations)."""

_invalid = trigger_fields.invalid
_join = trigger_fields.join


def parse_metric_trigger(
    data: Mapping[str, Any], field: str, *, checked: bool = True
) -> triggers.MetricTrigger:
    """Parses and validates a metric trigger; errors name the field path below ``field``.

    Args:
        data: The trigger's JSON.
        field: Its path (``trigger``, ``trigger.triggers[1]``).
        checked: Enforce the minimum ``range`` and ``firing_for`` (on create and update); stored
            automations are read back without it.

    Raises:
        errors.InvalidArgument: With the path of the first bad field.
    """
    for key in sorted(set(data) - _TRIGGER_KEYS):
        if key in _LEGACY_EMPTY and data[key] in _LEGACY_EMPTY[key]:
            continue
        hint = " (a metric trigger groups with metric.for_each)" if key == "for_each" else ""
        raise _invalid(_join(field, key), f"unknown field of a metric trigger{hint}")
    posture = data.get("posture", "Metric")
    if posture != "Metric":
        raise _invalid(_join(field, "posture"), "a metric trigger's posture must be 'Metric'")
    match = trigger_fields.parse_resource_spec(data.get("match"), _join(field, "match"))
    match_related = trigger_fields.parse_match_related(
        data.get("match_related"), _join(field, "match_related")
    )
    query = _parse_query(data.get("metric"), _join(field, "metric"), checked)
    spec_match, spec_related = trigger_fields.normalized_specs(match, match_related)
    normalized = {
        "type": "metric",
        "match": spec_match,
        "match_related": spec_related,
        "metric": dump_query(query),
    }
    return triggers.MetricTrigger(
        id=trigger_fields.trigger_digest(normalized, field),
        match=match,
        match_related=match_related,
        metric=query,
    )


def _number(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(field, "must be a number")
    number = float(value)
    if not math.isfinite(number):
        raise _invalid(field, "must be a finite number")
    return number


def _seconds(data: Mapping[str, Any], key: str, field: str, checked: bool) -> float:
    where = _join(field, key)
    raw = data.get(key)
    seconds = metric_queries.MIN_SECONDS if raw is None else durations.parse_duration(raw, where)
    if seconds <= 0:
        raise _invalid(where, "must be a positive duration")
    if checked and seconds < minimum_seconds:
        shown = durations.format_seconds(minimum_seconds)
        words = " (5 minutes)" if minimum_seconds == metric_queries.MIN_SECONDS else ""
        raise _invalid(where, f"The minimum range is {shown} seconds{words}")
    return seconds


def _parse_query(value: object, field: str, checked: bool) -> metric_queries.MetricQuery:
    if not isinstance(value, Mapping):
        raise _invalid(field, "is required: an object with name, threshold and operator")
    unknown = sorted(set(value) - _QUERY_KEYS)
    if unknown:
        raise _invalid(_join(field, unknown[0]), "unknown field of a metric query")
    name = value.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _invalid(
            _join(field, "name"), "Input should be 'lateness', 'duration' or 'successes'"
        )
    if "threshold" not in value:
        raise _invalid(_join(field, "threshold"), "is required")
    threshold = _number(value["threshold"], _join(field, "threshold"))
    operator = value.get("operator")
    if operator not in metric_queries.OPERATORS:
        raise _invalid(_join(field, "operator"), "Input should be '<', '<=', '>' or '>='")
    events = None
    if value.get("events") is not None:
        events = tuple(
            sorted(set(trigger_fields.string_list(value["events"], _join(field, "events"))))
        )
        if not events or not all(events):
            raise _invalid(_join(field, "events"), "must list at least one event name")
    spec = None if value.get("value") is None else _parse_value(value["value"], field)
    aggregation = value.get("aggregation")
    if aggregation is not None and aggregation not in metric_queries.AGGREGATIONS:
        raise _invalid(
            _join(field, "aggregation"),
            "must be one of " + ", ".join(metric_queries.AGGREGATIONS),
        )
    if (
        name not in metric_queries.PREFECT_METRICS
        and events is None
        and not isinstance(spec, metric_queries.Between | metric_queries.Outcome)
    ):
        raise _invalid(
            _join(field, "events"),
            f"a metric of one's own ({name!r} is not 'successes', 'duration' or 'lateness')"
            " must name the events it counts",
        )
    return metric_queries.MetricQuery(
        name=name,
        threshold=threshold,
        operator=operator,
        range=_seconds(value, "range", field, checked),
        firing_for=_seconds(value, "firing_for", field, checked),
        events=events,
        value=spec,
        aggregation=aggregation,
        for_each=trigger_fields.label_names(value.get("for_each"), _join(field, "for_each")),
    )


def _label(value: object, field: str) -> str:
    if value is None:
        return metric_queries.DEFAULT_KEY
    if not isinstance(value, str) or not value:
        raise _invalid(field, "must be a label or related:<role>:<label>")
    return trigger_fields.label_names([value], field)[0]


def _names(data: Mapping[str, Any], key: str, field: str) -> tuple[str, ...]:
    names = trigger_fields.string_list(data.get(key), _join(field, key))
    if not names or not all(names):
        raise _invalid(_join(field, key), "must list at least one event name")
    return tuple(sorted(set(names)))


def _parse_value(value: object, query_field: str) -> metric_queries.ValueSpec:
    field = _join(query_field, "value")
    if value == "count":
        return metric_queries.Count()
    if not isinstance(value, Mapping) or len(value) != 1:
        raise _invalid(
            field, 'must be "count", {"field": ...}, {"between": {...}} or {"outcome": {...}}'
        )
    ((kind, body),) = value.items()
    if kind not in ("field", "between", "outcome"):
        raise _invalid(field, f"unknown kind of value {kind!r} (count, field, between or outcome)")
    inner = _join(field, str(kind))
    if kind == "field":
        if not isinstance(body, str) or not body or body == "payload":
            raise _invalid(inner, "must be payload.<key>, a label or related:<role>:<label>")
        if body.startswith("related:"):
            trigger_fields.label_names([body], inner)
        return metric_queries.FieldValue(body)
    if not isinstance(body, Mapping):
        raise _invalid(inner, "must be an object")
    if kind == "between":
        unknown = sorted(set(body) - {"from", "to", "key"})
        if unknown:
            raise _invalid(_join(inner, unknown[0]), "unknown field of a between value")
        return metric_queries.Between(
            start=_names(body, "from", inner),
            end=_names(body, "to", inner),
            key=_label(body.get("key"), _join(inner, "key")),
        )
    unknown = sorted(set(body) - {"start", "failure", "success", "key"})
    if unknown:
        raise _invalid(_join(inner, unknown[0]), "unknown field of an outcome value")
    success = None if body.get("success") is None else _names(body, "success", inner)
    return metric_queries.Outcome(
        start=_names(body, "start", inner),
        failure=_names(body, "failure", inner),
        success=success,
        key=_label(body.get("key"), _join(inner, "key")),
    )


def dump_value(spec: metric_queries.ValueSpec) -> Any:
    """Prints a metric's ``value`` in the JSON :func:`parse_metric_trigger` reads."""
    if isinstance(spec, metric_queries.Count):
        return "count"
    if isinstance(spec, metric_queries.FieldValue):
        return {"field": spec.path}
    if isinstance(spec, metric_queries.Between):
        return {"between": {"from": list(spec.start), "to": list(spec.end), "key": spec.key}}
    body: dict[str, Any] = {"start": list(spec.start), "failure": list(spec.failure)}
    if spec.success is not None:
        body["success"] = list(spec.success)
    body["key"] = spec.key
    return {"outcome": body}


def dump_query(query: metric_queries.MetricQuery) -> dict[str, Any]:
    """Prints a metric query: Prefect's five fields, then the extension's fields that are set."""
    out: dict[str, Any] = {
        "name": query.name,
        "threshold": query.threshold,
        "operator": query.operator,
        "range": durations.format_seconds(query.range),
        "firing_for": durations.format_seconds(query.firing_for),
    }
    if query.events is not None:
        out["events"] = list(query.events)
    if query.value is not None:
        out["value"] = dump_value(query.value)
    if query.aggregation is not None:
        out["aggregation"] = query.aggregation
    if query.for_each:
        out["for_each"] = list(query.for_each)
    return out


def dump_metric_trigger(trigger: triggers.MetricTrigger) -> dict[str, Any]:
    """Prints a metric trigger in Prefect's JSON shape (durations in seconds)."""
    return {
        "type": "metric",
        "id": trigger.id,
        "posture": "Metric",
        "match": trigger_fields.dump_resource_spec(trigger.match),
        "match_related": trigger_fields.dump_match_related(trigger.match_related),
        "metric": dump_query(trigger.metric),
    }
