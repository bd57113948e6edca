"""One group of a metric trigger: its window, its open intervals or outcomes, its state machine.

The state machine (per group; one group without ``metric.for_each``)::

    Resolved --(breach held for firing_for)--> Triggered --(recovery held for firing_for)--> Resolved

``since`` is when the pending change began: the start of the current breach while Resolved, of the
current recovery while Triggered; None while there is none. The value is evaluated whenever it can
change (a sample arrives, a sample leaves the window) and when ``since + firing_for`` is reached.
No data (a mean, minimum, maximum or percentile of an empty window) holds the state and clears
``since``: a change needs ``firing_for`` of data that shows it.
"""

from __future__ import annotations

import array
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from automations.domain import events, firings
from automations.engine.clock import quantize
from automations.engine.metrics.entities import EntityKey
from automations.engine.metrics.windows import Window

if TYPE_CHECKING:
    from automations.engine.buckets import BucketKey

TICK = 1.0
"""Seconds: a group is re-evaluated for samples leaving its window when the oldest one leaves,
but at most once per ``TICK`` after its last evaluation, so a window sliding past many samples is
evaluated once a second, not once per sample. ``firing_for`` being reached is evaluated exactly."""
MIN_OPEN_HORIZON = 86400.0
"""An interval of a ``between`` metric left open (its end never came) is forgotten after
``max(range, MIN_OPEN_HORIZON)`` seconds."""


class Group:
    """The state of one group of one metric trigger.

    Attributes:
        key: The group's ``for_each`` values (a ``BucketKey``: the value for one label, a tuple
            otherwise, ``()`` without ``for_each``).
        window: The samples in the window.
        open: ``between`` metrics: entity -> ``occurred`` of its open interval's start.
        entities: ``outcome`` metrics: entity -> the time of its sample.
        failed: ``outcome`` metrics: the entities whose sample is 0.
        triggered: The state: Triggered (True) or Resolved.
        since: When the pending change began, or None.
        last_event: The last event that fed the group in the current call (the triggering event
            of a change made by it); None between calls.
        stored: Its state record is in the store.
        state_dirty: Its state changed since the last step.
        unsaved_times: Times of the samples added since the last step (to write as a chunk).
        unsaved_values: Their values.
        entity_dirty: Entities changed since the last step -> until when the record stored for
            it before the step matters (None: no record, or one that time already made stale):
            how long the deletion written for it, if it is gone, must be kept.
        marked: Waiting to be evaluated by the engine's next ``settle``.
        dirty: Waiting to be written by the engine's next ``write``.
    """

    __slots__ = (
        "key",
        "window",
        "open",
        "open_floor",
        "entities",
        "failed",
        "triggered",
        "since",
        "last_event",
        "stored",
        "state_dirty",
        "unsaved_times",
        "unsaved_values",
        "entity_dirty",
        "marked",
        "dirty",
        "token",
        "due",
        "evaluated",
        "alive",
        "runtime",
    )

    def __init__(self, key: BucketKey, window: Window, runtime: object) -> None:
        self.key = key
        self.window = window
        self.open: dict[EntityKey, float] | None = None
        self.open_floor = math.inf
        self.entities: dict[EntityKey, float] | None = None
        self.failed: set[EntityKey] | None = None
        self.triggered = False
        self.since: float | None = None
        self.last_event: events.Event | None = None
        self.stored = False
        self.state_dirty = False
        self.unsaved_times: array.array[float] | None = None
        self.unsaved_values: array.array[float] | None = None
        self.entity_dirty: dict[EntityKey, float | None] | None = None
        self.marked = False
        self.dirty = False
        self.token = 0
        self.due: float | None = None
        self.evaluated = -math.inf
        self.alive = True
        self.runtime = runtime  # the MetricRuntime (typed there: a cycle otherwise)

    def __lt__(self, other: Group) -> bool:
        """Groups due at the same instant are not ordered (the engine sorts what it pops)."""
        return False

    def mark_entity(self, entity: EntityKey, stored_until: float | None) -> None:
        """Notes that ``entity``'s record must be written.

        ``stored_until``: until when the entity's record as stored before this step matters
        (None when it has none, or when time made it stale); the first call of a step counts.
        """
        dirty = self.entity_dirty
        if dirty is None:
            self.entity_dirty = {entity: stored_until}
        elif entity not in dirty:
            dirty[entity] = stored_until

    def add_sample(self, at: float, value: float) -> None:
        """Adds a new sample, to be written with the step.

        ``outcome`` samples do not come this way: their entities hold them.
        """
        self.window.add(at, value)
        times = self.unsaved_times
        if times is None:
            self.unsaved_times = array.array("d", (at,))
            if self.window.values is not None:
                self.unsaved_values = array.array("d", (value,))
        else:
            times.append(at)
            if self.unsaved_values is not None:
                self.unsaved_values.append(value)

    def step(
        self, value: float | None, as_of: float, breach: Callable[[float], bool], firing_for: float
    ) -> firings.FiringState | None:
        """Runs the state machine for ``value`` at event time ``as_of``; returns a change or None.

        ``breach`` tells whether a value breaches (``metric_queries.breach_test``).
        """
        since = self.since
        # pending: the value shows the other state (a breach while Resolved, a recovery while
        # Triggered); no data holds the state and clears a pending change
        if value is None or breach(value) == self.triggered:
            if since is not None:
                self.since = None
                self.state_dirty = True
            return None
        if since is None:
            self.since = as_of
            self.state_dirty = True
            since = as_of
        if quantize(as_of - since) < firing_for:
            return None
        self.triggered = not self.triggered
        self.since = None
        self.state_dirty = True
        return firings.FiringState.TRIGGERED if self.triggered else firings.FiringState.RESOLVED

    def next_due(self, range_seconds: float, firing_for: float, horizon: float) -> float | None:
        """The event time at which the group next needs evaluating, or None.

        When ``since + firing_for`` is reached; when its oldest sample (or open interval) leaves,
        but not sooner than ``TICK`` after its last evaluation.
        """
        window = self.window
        times = window.times
        due = times[window.head] + range_seconds if window.head < len(times) else math.inf
        if self.open:
            floor = self.open_floor + horizon
            if floor < due:
                due = floor
        if due != math.inf:
            earliest = self.evaluated + TICK
            if earliest > due:
                due = earliest
        since = self.since
        if since is not None:
            pending = since + firing_for
            if pending < due:
                due = pending
        return None if due == math.inf else quantize(due)

    def idle(self) -> bool:
        """Nothing held: Resolved, no pending change, no sample, no open interval or outcome."""
        return (
            not self.triggered
            and self.since is None
            and not len(self.window)
            and not self.open
            and not self.entities
        )
