"""Prometheus metrics of a bundled executor (served on ``--metrics-addr`` when given).

Labels come from small fixed sets: the executor's name, the action types it serves and the
outcome (``ok``, ``failed``, ``retryable``, ``duplicate``).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ACTIONS = Counter(
    "automations_executor_actions_total",
    "Action invocations answered, by outcome (ok, failed, retryable, duplicate).",
    ["executor", "action_type", "outcome"],
)
ACTION_DURATION = Histogram(
    "automations_executor_action_duration_seconds",
    "Time to answer an action invocation, repeats included.",
    ["executor", "action_type"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def record(executor: str, action_type: str, outcome: str, seconds: float) -> None:
    """Counts one answered invocation and observes its duration."""
    ACTIONS.labels(executor, action_type, outcome).inc()
    ACTION_DURATION.labels(executor, action_type).observe(seconds)
