"""The per-(automation, event trigger, for_each key) bucket state machine, exactly Prefect's.

This is a port of ``reactive_evaluation`` (the per-trigger part) and ``evaluate`` from Prefect
3.8.8's ``server/events/triggers.py``, with buckets held in memory as small slotted objects instead
of database rows:

* an ``after`` event ensures a bucket ``[occurred, occurred + within)``, starting the count at -1
  when the event is also expected (so it does not count itself);
* without ``after``, the first expected event of a key opens ``[occurred - 15 min, occurred +
  within)`` (the lookback for out-of-order stragglers);
* ``evaluate`` counts an event inside the window (or always, for an immediate trigger), fires when
  the threshold is met (reactive) or when the window is over with too few events (proactive), and
  then either drops the bucket (``after`` triggers need a new ``after`` event) or opens the next
  tumbling window at ``max(old end, now)``, re-evaluating an event that fell past the old end;
* a proactive event that is both ``after`` and ``expect`` and meets the count restarts the window
  from itself (Prefect #18819, heartbeats).

Deliberate differences, all about proactive triggers (the corpus's "improved" rules):

* I1: a proactive trigger without ``after`` and without ``for_each`` watches back-to-back windows
  from the moment it is loaded; a satisfied window is not dropped, the next one starts at its end.
* I2: a proactive trigger with ``after`` and no ``for_each`` opens a window only on an ``after``
  event (Prefect's proactive pass would open one by itself).
* Satisfied proactive windows (count >= threshold) are dropped at the engine's next call after the
  one that satisfied them, which is what Prefect's proactive pass converges to when it runs often.

Expired reactive buckets are swept 60 s (event time) after their end, as Prefect's periodic sweep
(``PREFECT_EVENTS_EXPIRED_BUCKET_BUFFER``) does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from automations.domain import codec, events, triggers
from automations.engine.clock import quantize

if TYPE_CHECKING:
    from automations.engine.composite import CompositeRuntime
    from automations.engine.resolution import Resolutions

PRECEDING_EVENT_LOOKBACK = 900.0
"""Seconds a first reactive window reaches back (Prefect's ``PRECEDING_EVENT_LOOKBACK``)."""
EXPIRED_BUCKET_BUFFER = 60.0
"""Seconds after its end that a bucket is swept (``PREFECT_EVENTS_EXPIRED_BUCKET_BUFFER``)."""

BucketKey = str | tuple[str, ...]
"""The values of a trigger's ``for_each`` labels (sorted by label), ``""`` when missing.

The value itself for a trigger with exactly one ``for_each`` label (the common case), a tuple
otherwise (``()`` without ``for_each``): a 1-tuple per bucket cost 48 bytes per live bucket."""


class Bucket:
    """One open window of one trigger for one ``for_each`` key."""

    __slots__ = (
        "key",
        "start",
        "end",
        "count",
        "last_event",
        "token",
        "scheduled",
        "alive",
        "stored",
        "runtime",
    )

    def __init__(
        self,
        key: BucketKey,
        start: float,
        end: float,
        count: int,
        last_event: events.Event | bytes | None,
        runtime: TriggerRuntime | None = None,
    ) -> None:
        self.key = key
        self.start = start
        self.end = end
        self.count = count
        # Only proactive buckets keep their last event (the triggering event of a deadline
        # firing); a reactive firing's triggering event is always the event being processed.
        # Between steps it is held as its encoded JSON (see ``records.bucket_record``): ~0.2 KB
        # instead of ~0.6 KB for an Event with its dicts and strings.
        self.last_event = last_event
        self.token = 0
        self.scheduled = -1
        self.alive = True
        self.stored = False
        # the owning runtime, so that a deadline-heap entry is a flat ``(due, bucket, token)``
        # (a nested ``(due, seq, (runtime, bucket, token))`` cost ~100 more bytes per bucket)
        self.runtime = runtime

    def __repr__(self) -> str:
        last = self.triggering_event()
        last_id = None if last is None else last.id
        return f"Bucket({self.key}, [{self.start}, {self.end}), count={self.count}, last={last_id})"

    def __lt__(self, other: Bucket) -> bool:
        """Buckets due at the same instant are not ordered (the engine sorts what it pops)."""
        return False

    def triggering_event(self) -> events.Event | None:
        """The last event, decoded if it is held encoded."""
        last = self.last_event
        if isinstance(last, bytes):
            return codec.event_from_json(last)
        return last


DueEntry = tuple[float, Bucket, int]
"""A deadline-heap entry: (due, bucket, the bucket's token when pushed); stale entries are
skipped when popped. Flat, with the runtime reached through the bucket: 72 bytes per live
bucket instead of ~170 for a ``(due, seq, (runtime, bucket, token))``."""


class BucketHost(Protocol):
    """What a :class:`TriggerRuntime` needs from the engine."""

    def fire(
        self, runtime: TriggerRuntime, key: BucketKey, event: events.Event | None, now: float
    ) -> None:
        """A trigger fired for ``key`` at wall time ``now`` with ``event`` as triggering event."""

    def changed(self, runtime: TriggerRuntime, key: BucketKey) -> None:
        """A bucket was created, changed or removed: persist it at the end of the step."""

    def satisfied(self, runtime: TriggerRuntime, bucket: Bucket, now: float) -> None:
        """A proactive bucket met its threshold: drop it at the next call after ``now``."""

    def resolved(
        self, runtime: TriggerRuntime, key: BucketKey, event: events.Event, now: float
    ) -> None:
        """A key that fired resolved: its expected events resumed (``engine.resolution``)."""


def label_reader(label: str) -> Callable[[events.Event], str]:
    """Prefect's ``Event.find_resource_label`` for one ``for_each`` label ("" when missing)."""
    directive, _, related_label = label.rpartition(":")
    directive, _, role = directive.partition(":")
    if directive == "related":

        def read_related(event: events.Event) -> str:
            for related in event.related:
                if related.get("prefect.resource.role") == role:
                    return related.get(related_label) or ""
            return event.resource.get(label) or ""

        return read_related

    def read(event: events.Event) -> str:
        return event.resource.get(label) or ""

    return read


class TriggerRuntime:
    """The loaded state of one event trigger: its compiled settings and its buckets.

    Attributes:
        automation_id: The owning automation.
        trigger: The event trigger.
        order: Load order (automation, then position), used to order deadlines of one instant.
        buckets: The open buckets by ``for_each`` key.
        parent: The composite runtime this trigger reports to, or None for a top-level trigger.
        alive: False once unloaded or replaced.
    """

    __slots__ = (
        "automation_id",
        "trigger",
        "trigger_id",
        "order",
        "host",
        "buckets",
        "parent",
        "alive",
        "dirty",
        "removed_stored",
        "reactive",
        "immediate",
        "has_after",
        "within",
        "threshold",
        "label_names",
        "watches_always",
        "resolving",
        "_readers",
    )

    def __init__(
        self,
        automation_id: str,
        trigger: triggers.EventTrigger,
        order: tuple[int, int],
        host: BucketHost,
    ) -> None:
        self.automation_id = automation_id
        self.trigger = trigger
        self.trigger_id = trigger.id
        self.order = order
        self.host = host
        self.buckets: dict[BucketKey, Bucket] = {}
        self.parent: CompositeRuntime | None = None
        self.alive = True
        self.dirty: set[BucketKey] = set()
        self.removed_stored: set[BucketKey] = set()
        self.reactive = trigger.posture is triggers.Posture.REACTIVE
        self.within = float(trigger.within)
        self.immediate = self.reactive and self.within == 0
        self.has_after = bool(trigger.after)
        self.threshold = trigger.threshold
        self.label_names: tuple[str, ...] = tuple(sorted(trigger.for_each))
        self._readers = tuple(label_reader(label) for label in self.label_names)
        self.watches_always = not self.reactive and not trigger.after and not trigger.for_each
        """Improved rule I1: back-to-back windows from load time, no for_each, no after."""
        self.resolving: Resolutions | None = None
        """For a top-level proactive trigger: the keys that fired, waiting to resolve."""

    # ------------------------------------------------------------------ helpers

    def _changed(self, key: BucketKey) -> None:
        dirty = self.dirty
        if not dirty:
            self.host.changed(self, key)
        dirty.add(key)

    def bucketing_key(self, event: events.Event) -> BucketKey:
        """The bucket key of ``event`` (Prefect's ``EventTrigger.bucketing_key``)."""
        readers = self._readers
        if not readers:
            return ()
        if len(readers) == 1:
            return readers[0](event)
        return tuple([read(event) for read in readers])

    def key_values(self, key: BucketKey) -> tuple[str, ...]:
        """The key as a tuple of label values (in ``label_names`` order)."""
        return (key,) if isinstance(key, str) else key

    def key_from_values(self, values: list[str]) -> BucketKey:
        """The bucket key for stored label values (the inverse of :meth:`key_values`)."""
        if len(self.label_names) == 1 and len(values) == 1:
            return values[0]
        return tuple(values)

    def labels(self, key: BucketKey) -> dict[str, str]:
        """The firing's ``triggering_labels`` for ``key``."""
        return dict(zip(self.label_names, self.key_values(key), strict=True))

    def _ensure(
        self,
        key: BucketKey,
        start: float,
        end: float,
        last_event: events.Event | None,
        initial_count: int,
    ) -> Bucket:
        if self.reactive:
            last_event = None
        bucket = self.buckets.get(key)
        if bucket is not None:
            if last_event is not None:
                bucket.last_event = last_event
                self._changed(key)
            return bucket
        bucket = Bucket(key, start, end, initial_count, last_event, self)
        self.buckets[key] = bucket
        self._changed(key)
        return bucket

    def start_new(
        self,
        key: BucketKey,
        start: float,
        end: float,
        count: int,
        last_event: events.Event | None = None,
    ) -> Bucket:
        """Prefect's ``start_new_bucket``: an upsert setting every field of the key's bucket."""
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = Bucket(key, start, end, count, last_event, self)
            self.buckets[key] = bucket
        else:
            bucket.start = start
            bucket.end = end
            bucket.count = count
            bucket.last_event = last_event
            bucket.token += 1
        self._changed(key)
        return bucket

    def remove(self, bucket: Bucket) -> None:
        """Deletes a bucket."""
        if self.buckets.get(bucket.key) is bucket:
            del self.buckets[bucket.key]
            if bucket.stored:
                self.removed_stored.add(bucket.key)
                self._changed(bucket.key)
        bucket.alive = False

    def open_first_window(self, as_of: float) -> None:
        """Opens the first window of an I1 trigger (no ``after``, no ``for_each``) at ``as_of``."""
        if self.watches_always and () not in self.buckets:
            self._ensure((), as_of, quantize(as_of + self.within), None, 0)

    # ------------------------------------------------------------------ events

    def on_event(self, event: events.Event, after: bool, expect: bool, now: float) -> None:
        """Evaluates one covered event (the per-trigger body of Prefect's ``reactive_evaluation``).

        Args:
            event: The event.
            after: The event name matches one of the trigger's ``after`` patterns.
            expect: The event name matches ``expect`` (or ``expect`` is empty).
            now: Wall time of processing (the firing time).
        """
        key = self.bucketing_key(event)
        resolving = self.resolving
        if resolving is not None and expect and resolving.waiting:
            if resolving.expected(key, event):
                self.host.resolved(self, key, event, now)
        bucket: Bucket | None = None
        occurred = event.occurred
        if self.has_after and after:
            bucket = self._ensure(
                key, occurred, quantize(occurred + self.within), event, -1 if expect else 0
            )
        if bucket is None and not self.has_after and expect:
            bucket = self._ensure(
                key,
                quantize(occurred - PRECEDING_EVENT_LOOKBACK),
                quantize(occurred + self.within),
                event,
                0,
            )
        if not expect:
            return
        if bucket is None:
            bucket = self.buckets.get(key)
            if bucket is None:
                return
        result = self.evaluate(bucket, occurred, event, now, after, expect)
        if (
            result is not None
            and not self.reactive
            and not self.watches_always
            and result.count >= self.threshold
        ):
            self.host.satisfied(self, result, now)

    def on_deadline(self, bucket: Bucket, as_of: float, now: float) -> None:
        """Evaluates a proactive bucket whose end has been reached on the event clock."""
        if not self.watches_always and bucket.count >= self.threshold:
            self.remove(bucket)  # a satisfied window: Prefect's remove_buckets_exceeding_threshold
            return
        self.evaluate(bucket, as_of, None, now, False, False)

    def evaluate(
        self,
        bucket: Bucket,
        at: float,
        event: events.Event | None,
        now: float,
        after: bool,
        expect: bool,
    ) -> Bucket | None:
        """Prefect's ``evaluate``: counts, fires and moves the bucket on.

        Args:
            bucket: The bucket to evaluate.
            at: The evaluation time: the event's ``occurred``, or event-clock time for a deadline.
            event: The triggering event, or None for a proactive deadline.
            now: Wall time (the firing time).
            after: ``event`` matches ``after``.
            expect: ``event`` matches ``expect``.

        Returns:
            The key's bucket afterwards, or None.
        """
        count = 1 if event is not None else 0
        if at < bucket.start:
            return bucket
        if count and (self.immediate or bucket.start <= at < bucket.end):
            bucket.count += count
            if not self.reactive:
                bucket.last_event = event
            self._changed(bucket.key)
            count = 0
        reactive = self.reactive
        ready = reactive or bucket.end <= at
        if reactive:
            meets = bucket.count >= self.threshold
        else:
            meets = bucket.count < self.threshold
        if ready and meets:
            self.host.fire(
                self, bucket.key, event if event is not None else bucket.triggering_event(), now
            )
            self.remove(bucket)
        elif at < bucket.end:
            if event is not None and not reactive and not meets and after and expect:
                # Prefect #18819: the same event is after and expect: restart from it
                self.remove(bucket)
                occurred = event.occurred
                return self.start_new(
                    bucket.key, occurred, quantize(occurred + self.within), 0, event
                )
            return bucket
        if self.has_after:
            self.remove(bucket)
            return None
        if self.within == 0:
            return None
        start = bucket.end if bucket.end > at else at
        end = quantize(start + self.within)
        if reactive and count > 0:
            fresh = self.start_new(bucket.key, start, end, 0)
            return self.evaluate(fresh, at, event, now, after, expect)
        return self.start_new(bucket.key, start, end, count)

    # ------------------------------------------------------------------ persistence

    def due(self, bucket: Bucket) -> float:
        """Event time at which the bucket needs attention: its end, or its sweep if reactive."""
        if self.reactive:
            return quantize(bucket.end + EXPIRED_BUCKET_BUFFER)
        return bucket.end


def scheduled(rt: TriggerRuntime, bucket: Bucket, token: int) -> bool:
    """Whether a deadline-heap entry ``(due, bucket, token)`` of ``rt`` is still current."""
    return (
        rt.alive and bucket.alive and bucket.token == token and rt.buckets.get(bucket.key) is bucket
    )


Satisfied = tuple[float, TriggerRuntime, Bucket]
"""A proactive bucket that met its threshold: (wall time it did, its runtime, the bucket)."""


def drop_satisfied(satisfied: list[Satisfied], now: float) -> list[Satisfied]:
    """Drops the satisfied buckets marked before ``now`` (still current); returns the others."""
    keep: list[Satisfied] = []
    for item in satisfied:
        marked, rt, bucket = item
        if marked >= now:
            keep.append(item)
        elif (
            rt.alive
            and bucket.alive
            and rt.buckets.get(bucket.key) is bucket
            and bucket.count >= rt.threshold
        ):
            rt.remove(bucket)
    return keep
