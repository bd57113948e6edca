"""The webhook metrics a request moves: its outcome, its latency, the events it added.

The receiver counts through a meter. In the engine's process that is the Prometheus metrics
themselves (:class:`PrometheusMeter`); in the front process (``front``), whose metrics nobody
scrapes, a :class:`Tally` adds them up and hands them to the engine every second, which applies
them to its own (``PrometheusMeter.apply``): the metrics look the same either way.
"""

from __future__ import annotations

from typing import Any, Protocol

from automations import metrics

OUTCOMES = (
    "accepted",
    "duplicate",
    "invalid",
    "unauthenticated",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "too_large",
    "rate_limited",
    "unavailable",
    "handshake",
)
"""The ``outcome`` label values of ``automations_webhook_requests_total``."""


class Meter(Protocol):
    """Where a request's metrics go."""

    def request(self, outcome: str, seconds: float | None) -> None:
        """Counts a request by its outcome, with its latency when it has one."""

    def events(self, fresh: int, duplicates: int) -> None:
        """Counts the events of an accepted request, new and seen before."""


class PrometheusMeter:
    """The engine's Prometheus metrics."""

    def __init__(self) -> None:
        self._counters = {outcome: metrics.WEBHOOK_REQUESTS.labels(outcome) for outcome in OUTCOMES}

    def request(self, outcome: str, seconds: float | None) -> None:
        """Counts a request by its outcome, with its latency when it has one."""
        self._counters[outcome].inc()
        if seconds is not None:
            metrics.WEBHOOK_LATENCY.observe(seconds)

    def events(self, fresh: int, duplicates: int) -> None:
        """Counts the events of an accepted request, new and seen before."""
        if fresh:
            metrics.EVENTS_ACCEPTED.inc(fresh)
            metrics.WEBHOOK_EVENTS.inc(fresh)
        if duplicates:
            metrics.EVENTS_DUPLICATE.inc(duplicates)

    def apply(self, tally: dict[str, Any]) -> None:
        """Adds what a :class:`Tally` took (``Tally.take``) to the metrics."""
        for outcome, count in tally.get("outcomes", {}).items():
            if outcome in self._counters and count > 0:
                self._counters[outcome].inc(count)
        latency = tally.get("latency")
        if latency:
            metrics.WEBHOOK_LATENCY.add(latency["counts"], float(latency["sum"]))
        self.events(int(tally.get("fresh", 0)), int(tally.get("duplicates", 0)))


class Tally:
    """Metrics added up in memory until taken (in the front process).

    Latencies are counted into the buckets of the engine's histogram here, so that what goes
    over each second is a few numbers whatever the request rate.
    """

    def __init__(self) -> None:
        self._outcomes: dict[str, int] = {}
        self._bucket = metrics.WEBHOOK_LATENCY.bucket
        self._counts = [0] * len(metrics.WEBHOOK_LATENCY.bounds)
        self._latency_sum = 0.0
        self._fresh = 0
        self._duplicates = 0

    def request(self, outcome: str, seconds: float | None) -> None:
        """Counts a request by its outcome, with its latency when it has one."""
        self._outcomes[outcome] = self._outcomes.get(outcome, 0) + 1
        if seconds is not None:
            self._counts[self._bucket(seconds)] += 1
            self._latency_sum += seconds

    def events(self, fresh: int, duplicates: int) -> None:
        """Counts the events of an accepted request, new and seen before."""
        self._fresh += fresh
        self._duplicates += duplicates

    def take(self) -> dict[str, Any] | None:
        """What was counted since the last take (None if nothing), as JSON-able data."""
        if not self._outcomes and not self._fresh and not self._duplicates:
            return None
        taken = {
            "outcomes": self._outcomes,
            "latency": {"counts": self._counts, "sum": self._latency_sum},
            "fresh": self._fresh,
            "duplicates": self._duplicates,
        }
        self._outcomes, self._fresh, self._duplicates = {}, 0, 0
        self._counts, self._latency_sum = [0] * len(self._counts), 0.0
        return taken
