"""Prometheus metrics of the engine (``automations_`` prefix, base units, bounded labels only).

Labels never carry an automation id, a webhook id or slug, or an event name: their values come
from small fixed sets (gRPC method and code, rejection reason, trigger type, posture, action type,
webhook outcome).
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import cast

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

_le_label = cast(Callable[[float], str], floatToGoString)
"""How ``prometheus_client`` writes a bucket bound (``0.0005``, ``1.0``, ``+Inf``)."""


class BucketedHistogram:
    """A Prometheus histogram that also takes observations counted elsewhere, bucket by bucket.

    The webhook front processes count their requests' latencies into these buckets themselves
    and hand the engine the counts every second (:meth:`add`): handing over every latency, the
    engine's process observed them one by one, ~1 us of its CPU per request at saturation, and
    the message grew with the request rate. Exposed like ``prometheus_client.Histogram``.

    Args:
        name: The metric's name.
        documentation: Its help text.
        buckets: The upper bounds (``+Inf`` is added).
    """

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self._name = name
        self._documentation = documentation
        self.bounds: tuple[float, ...] = (*sorted(buckets), math.inf)
        self._counts = [0] * len(self.bounds)
        self._sum = 0.0
        self._lock = threading.Lock()
        REGISTRY.register(self)

    def bucket(self, value: float) -> int:
        """The index of the bucket ``value`` falls in (``le``: the first bound not below it)."""
        return bisect.bisect_left(self.bounds, value)

    def observe(self, value: float) -> None:
        """Counts one observation."""
        index = self.bucket(value)
        with self._lock:
            self._counts[index] += 1
            self._sum += value

    def add(self, counts: Sequence[int], total: float) -> None:
        """Adds observations counted elsewhere: per bucket (as :meth:`bucket` numbers them)."""
        with self._lock:
            for index, count in enumerate(counts[: len(self._counts)]):
                self._counts[index] += count
            self._sum += total

    def collect(self) -> Iterator[HistogramMetricFamily]:
        """The metric, for the registry."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, buckets = 0, []
        for bound, count in zip(self.bounds, counts, strict=True):
            cumulative += count
            buckets.append((_le_label(bound), cumulative))
        yield HistogramMetricFamily(
            self._name, self._documentation, buckets=buckets, sum_value=total
        )


EVENTS_RECEIVED = Counter(
    "automations_events_received_total", "Events received by PublishEvents and StreamEvents."
)
EVENTS_ACCEPTED = Counter(
    "automations_events_accepted_total", "Events committed to the event log and evaluated."
)
EVENTS_DUPLICATE = Counter(
    "automations_events_duplicate_total", "Events acknowledged as duplicates of an id seen before."
)
EVENTS_REJECTED = Counter(
    "automations_events_rejected_total",
    "Events rejected by validation or backpressure.",
    ["reason"],
)
INGEST_BATCH_SIZE = Histogram(
    "automations_ingest_batch_events",
    "Events per client batch.",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
)
INGEST_LATENCY = Histogram(
    "automations_ingest_latency_seconds",
    "Time from receiving a batch to acknowledging it (validation, commit, evaluation).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
COMMIT_EVENTS = Histogram(
    "automations_commit_events",
    "Events per group commit (one database transaction).",
    buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 20000),
)
EVALUATION_LATENCY = Histogram(
    "automations_evaluation_seconds",
    "Time the trigger engine spends on one group of events.",
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
FIRINGS = Counter("automations_firings_total", "Automation firings.", ["trigger_type", "posture"])
DEADLINE_LAG = Histogram(
    "automations_deadline_lag_seconds",
    "How late a proactive deadline was processed after it was due.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)
LIVE_BUCKETS = Gauge(
    "automations_live_buckets",
    "Trigger buckets (one per trigger and for_each key) held by the engine.",
)
OPEN_DEADLINES = Gauge(
    "automations_scheduled_deadlines",
    "Deadlines (window ends, bucket sweeps, lost followers) scheduled in the engine's heap.",
)
PENDING_EVENTS = Gauge(
    "automations_ingest_pending_events", "Events accepted by the API and waiting for a commit."
)
LOADED_AUTOMATIONS = Gauge(
    "automations_loaded_automations", "Enabled automations loaded in the engine."
)
GRPC_REQUESTS = Counter(
    "automations_grpc_requests_total", "gRPC requests handled.", ["grpc_method", "grpc_code"]
)
GRPC_LATENCY = Histogram(
    "automations_grpc_request_duration_seconds",
    "gRPC request latency.",
    ["grpc_method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

# ---------------------------------------------------------------------------- actions (outbox)

INVOCATIONS = Counter(
    "automations_invocations_total",
    "Action invocation attempts by outcome: dispatched (an attempt started), succeeded, failed "
    "(final), retried, dead_lettered.",
    ["action_type", "outcome"],
)
OUTBOX_OPEN = Gauge(
    "automations_outbox_pending_invocations",
    "Invocations waiting for an attempt or in flight (pending + running).",
)
OUTBOX_OLDEST_AGE = Gauge(
    "automations_outbox_oldest_pending_age_seconds",
    "Age of the oldest pending or running invocation (0 when none).",
)
EXECUTOR_CALL_DURATION = Histogram(
    "automations_executor_call_duration_seconds",
    "Latency of ExecuteAction calls, by executor address.",
    ["executor"],
    buckets=(
        0.0005,
        0.001,
        0.0025,
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1.0,
        2.5,
        5.0,
        10.0,
        30.0,
    ),
)
DISPATCH_DELAY = Histogram(
    "automations_dispatch_delay_seconds",
    "Time from a firing's invocation being written to its first attempt starting.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)
CHAINS_CUT = Counter(
    "automations_chains_cut_total",
    "Firings whose actions were not run by the loop guard (a chain too deep, or a cascade over budget).",
)

# ------------------------------------------------------------------------- incoming webhooks

WEBHOOK_REQUESTS = Counter(
    "automations_webhook_requests_total",
    "Requests to /hooks/<slug> by outcome: accepted (204, new events), duplicate (204, every "
    "event seen before), invalid (400), unauthenticated (401), forbidden (403), not_found "
    "(404), method_not_allowed (405), too_large (413), rate_limited (429), unavailable (503), "
    "handshake (a validation handshake answered).",
    ["outcome"],
)
WEBHOOK_LATENCY = BucketedHistogram(
    "automations_webhook_request_duration_seconds",
    "Time from a webhook request's arrival to its answer (a 204 after the commit).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
WEBHOOK_EVENTS = Counter(
    "automations_webhook_events_total",
    "Events produced by webhooks and committed (new ones; duplicates are not counted).",
)

# ----------------------------------------------------------------------------- cluster mode

CLUSTER_PARTITIONS_OWNED = Gauge(
    "automations_cluster_partitions_owned", "Partitions this replica owns (cluster mode)."
)
CLUSTER_ACQUISITIONS = Counter(
    "automations_cluster_partition_acquisitions_total",
    "Partitions this replica acquired: takeover (from another replica that had not released "
    "it: a failover) or free (released by its owner, or never owned).",
    ["kind"],
)
CLUSTER_FENCED_COMMITS = Counter(
    "automations_cluster_fenced_commits_total",
    "Commits refused by the fence: the partition had been taken over by another replica.",
)
CLUSTER_RELAY_LAG = Histogram(
    "automations_cluster_relay_lag_seconds",
    "Time from a commit writing a log message (forward, automation-made events) to its PubAck.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)
CLUSTER_RELAY_PENDING = Gauge(
    "automations_cluster_relay_pending_messages",
    "Log messages committed and not yet relayed, of this replica's partitions.",
)
CLUSTER_LOG_LAG = Gauge(
    "automations_cluster_log_lag_messages",
    "Raw and forward log messages stored after the last one this replica read, over its partitions.",
)
