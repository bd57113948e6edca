"""What a metric trigger measures: Prefect's ``MetricTriggerQuery`` and its extension to any event.

Prefect's query names one of three flow-run metrics (``successes``, ``duration``, ``lateness``), a
threshold, an operator, a lookback ``range`` and ``firing_for``. This engine generalizes it: a query
may also say which events feed it (``events``), what each one contributes (``value``), how the
window's samples are combined (``aggregation``) and which labels split it into groups
(``for_each``). Prefect's three metrics are presets of those four fields (:data:`PRESETS`): a query
naming one of them takes the preset's values for the fields it leaves out, so
``{"name": "duration", "aggregation": "p95"}`` is the 95th percentile of flow-run durations.

Values:

* :class:`Count`: every event is a sample of 1;
* :class:`FieldValue`: a number read from the event (``payload.<path>``, a label, or
  ``related:<role>:<label>``); an event without a number there is skipped;
* :class:`Between`: the seconds from the last ``from`` event to the next ``to`` event of the same
  entity (``key``, a label), sampled when the ``to`` event occurs;
* :class:`Outcome`: one sample per entity, taken when its ``start`` event occurs: 1, or 0 while the
  latest of its ``failure`` / ``success`` events is a failure.
"""

from __future__ import annotations

import dataclasses
import functools
import operator as _op
from collections.abc import Callable

PREFECT_METRICS = ("successes", "duration", "lateness")
"""The metric names Prefect knows (``PrefectMetric``)."""
OPERATORS = ("<", "<=", ">", ">=")
"""Prefect's ``MetricTriggerOperator``: the trigger breaches while ``value <op> threshold``."""
AGGREGATIONS = ("count", "rate", "sum", "mean", "min", "max", "p50", "p90", "p95", "p99")
"""How a window's samples become the metric's value."""
PERCENTILES = {"p50": 50, "p90": 90, "p95": 95, "p99": 99}
"""The percentile aggregations and their percent."""
MIN_SECONDS = 300.0
"""Prefect's minimum (and default) ``range`` and ``firing_for``."""
DEFAULT_KEY = "prefect.resource.id"
"""The entity label of ``between`` and ``outcome`` values when ``key`` is left out."""


def _flow_run(*states: str) -> tuple[str, ...]:
    return tuple(f"prefect.flow-run.{state}" for state in states)


FLOW_RUN_EVENTS = _flow_run("*")
"""Every flow-run event (Prefect's state-change events are ``prefect.flow-run.<state name>``)."""
TERMINAL_STATES = _flow_run("Completed", "Cached", "Failed", "TimedOut", "Crashed", "Cancelled")
"""Flow-run states of a terminal type (COMPLETED, FAILED, CRASHED, CANCELLED)."""
FAILURE_STATES = _flow_run("Failed", "Crashed", "TimedOut")
"""The states ``successes`` counts as a failure (``TimedOut`` is a FAILED state; ``Cancelled`` is not)."""
NON_FAILURE_STATES = _flow_run(
    "Scheduled",
    "Late",
    "AwaitingRetry",
    "AwaitingConcurrencySlot",
    "Pending",
    "Running",
    "Retrying",
    "Paused",
    "Suspended",
    "Resuming",
    "Cancelling",
    "Cancelled",
    "Completed",
    "Cached",
    "RolledBack",
)
"""Prefect's other state names: a run whose latest state is one of these is not a failure (a
flow-run event that is no state change, such as a heartbeat, leaves the outcome as it is)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Count:
    """Every event of the metric is a sample of 1 (JSON ``"count"``)."""


@dataclasses.dataclass(frozen=True, slots=True)
class FieldValue:
    """A number read from each event (JSON ``{"field": PATH}``).

    Attributes:
        path: ``payload.<key>[.<key>...]``, a label of the primary resource, or
            ``related:<role>:<label>``. Numbers and numeric strings count; anything else (or a
            missing value) skips the event.
    """

    path: str


@dataclasses.dataclass(frozen=True, slots=True)
class Between:
    """Seconds between two events of one entity (JSON ``{"between": {"from", "to", "key"}}``).

    Attributes:
        start: ``from``: event-name patterns that start an interval (the last one before the end
            counts; a new one replaces an open one).
        end: ``to``: event-name patterns that end the entity's open interval and make a sample
            (at the end event's time). An event matching both ends the open interval, then opens
            the next one, so ``from`` = ``to`` measures the time between consecutive events.
        key: The label naming the entity (a label or ``related:<role>:<label>``).
    """

    start: tuple[str, ...]
    end: tuple[str, ...]
    key: str = DEFAULT_KEY


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """One 1/0 sample per entity (JSON ``{"outcome": {"start", "failure", "success", "key"}}``).

    Attributes:
        start: Event-name patterns whose first occurrence for an entity makes its sample (at that
            event's time).
        failure: Events that make the entity's sample 0.
        success: Events that make it 1 again; None: every event of the metric that is not a
            failure.
        key: The label naming the entity.
    """

    start: tuple[str, ...]
    failure: tuple[str, ...]
    success: tuple[str, ...] | None = None
    key: str = DEFAULT_KEY


ValueSpec = Count | FieldValue | Between | Outcome
"""What each event contributes to a metric."""

PRESETS: dict[str, tuple[tuple[str, ...], ValueSpec, str]] = {
    "successes": (
        FLOW_RUN_EVENTS,
        Outcome(start=_flow_run("Pending"), failure=FAILURE_STATES, success=NON_FAILURE_STATES),
        "mean",
    ),
    "duration": (
        FLOW_RUN_EVENTS,
        Between(start=_flow_run("Running", "Retrying"), end=TERMINAL_STATES),
        "mean",
    ),
    "lateness": (
        FLOW_RUN_EVENTS,
        Between(start=_flow_run("Late"), end=_flow_run("Running", "Crashed")),
        "mean",
    ),
}
"""Prefect's metrics as ``(events, value, aggregation)``:

* ``successes``: the fraction of runs that went Pending in the window whose latest state is not a
  failure (a run still in flight counts as a success);
* ``duration``: the mean seconds from the last Running (or Retrying) to a terminal state, for runs
  that ended in the window;
* ``lateness``: the mean seconds from Late to Running or Crashed, for runs that started (or
  crashed) in the window after being Late."""


@dataclasses.dataclass(frozen=True, slots=True)
class MetricQuery:
    """Prefect's ``MetricTriggerQuery``, plus the fields of the extension as they were given.

    Attributes:
        name: One of :data:`PREFECT_METRICS`, or a name of the user's own metric.
        threshold: The value compared with the metric.
        operator: One of :data:`OPERATORS`; the trigger breaches while ``value <op> threshold``.
        range: The lookback in seconds: the window is ``(now - range, now]`` on event time.
        firing_for: Seconds a breach (or a recovery) must hold before the state changes.
        events: Event-name patterns feeding the metric; None: the preset's (for a metric of
            one's own, the names its ``between`` or ``outcome`` value lists).
        value: What each event contributes; None: the preset's.
        aggregation: One of :data:`AGGREGATIONS`; None: the preset's.
        for_each: Labels splitting the metric into one series (and one state) per group.
    """

    name: str
    threshold: float
    operator: str
    range: float = MIN_SECONDS
    firing_for: float = MIN_SECONDS
    events: tuple[str, ...] | None = None
    value: ValueSpec | None = None
    aggregation: str | None = None
    for_each: tuple[str, ...] = ()

    def resolved(self) -> tuple[tuple[str, ...], ValueSpec, str]:
        """``(events, value, aggregation)`` with the preset's values for the ones left out."""
        preset = PRESETS.get(self.name)
        value = self.value if self.value is not None else (preset[1] if preset else Count())
        aggregation = self.aggregation or (preset[2] if preset else "count")
        if self.events is not None:
            events = self.events
        elif preset is not None:
            events = preset[0]
        else:
            events = named_events(value)
        return events, value, aggregation


def named_events(value: ValueSpec) -> tuple[str, ...]:
    """The event names a ``between`` or ``outcome`` value names (its default ``events``)."""
    if isinstance(value, Between):
        return tuple(dict.fromkeys(value.start + value.end))
    if isinstance(value, Outcome):
        return tuple(dict.fromkeys(value.start + value.failure + (value.success or ())))
    return ()


def breach_test(operator: str, threshold: float) -> Callable[[float], bool]:
    """:func:`breaches` for one operator and threshold, as one C-level call per value."""
    compare = {"<": _op.gt, "<=": _op.ge, ">": _op.lt, ">=": _op.le}[operator]
    return functools.partial(compare, threshold)  # threshold <op'> value == value <op> threshold


def breaches(value: float, operator: str, threshold: float) -> bool:
    """Whether ``value <operator> threshold`` (equality breaches only for ``<=`` and ``>=``)."""
    if operator == "<":
        return value < threshold
    if operator == "<=":
        return value <= threshold
    if operator == ">":
        return value > threshold
    return value >= threshold
