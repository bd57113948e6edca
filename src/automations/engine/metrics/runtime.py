"""The loaded state of one metric trigger: how its events become samples of its groups.

The matcher finds the events a metric trigger covers exactly as it finds an event trigger's: each
metric trigger is loaded into it as an equivalent reactive event trigger (:attr:`match_trigger`)
whose ``expect`` is the metric's ``events`` and whose ``match`` / ``match_related`` are the
trigger's. For each covered event the runtime finds the group (``metric.for_each``) and feeds it:

* ``count``: a sample of 1 at the event's time;
* ``field``: the number read from the event, if there is one;
* ``between``: an end event closes its entity's open interval (a sample of its length, at the
  end's time); a start event opens (or replaces) the entity's interval;
* ``outcome``: a start event makes the entity's sample (1, or 0 for a failure) unless it has one;
  a later failure or success event sets it.

A sample's time is the event's ``occurred``, never later than the engine's event clock; a sample
at or before ``now - range`` is not taken (a late event).
"""

from __future__ import annotations

import array
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from automations.domain import events, metric_queries, triggers
from automations.engine import buckets
from automations.engine.clock import quantize
from automations.engine.metrics.entities import EntityKey, EntityKeys
from automations.engine.metrics.groups import MIN_OPEN_HORIZON, Group
from automations.engine.metrics.windows import Window

if TYPE_CHECKING:
    from automations.engine.buckets import BucketKey
    from automations.engine.composite import CompositeRuntime

START = 1
"""Event class: starts an interval (``between.from``) or an outcome (``outcome.start``)."""
END = 2
"""Event class: ends an interval (``between.to``)."""
FAILURE = 4
"""Event class: an outcome's failure."""
SUCCESS = 8
"""Event class: an outcome's success (any event that is no failure, without ``success``)."""

_NAME_CACHE_LIMIT = 65_536


def _names_regex(patterns: Sequence[str]) -> re.Pattern[str] | None:
    """Event-name patterns as one regex: ``*`` matches one or more characters, as in ``expect``."""
    if not patterns:
        return None
    return re.compile(
        "|".join("(?:" + re.escape(p).replace("\\*", ".+") + ")" for p in patterns) + r"\Z"
    )


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def field_reader(path: str) -> Callable[[events.Event], float | None]:
    """Reads a ``field`` value: ``payload.<key>...``, a label or ``related:<role>:<label>``."""
    if path.startswith("payload."):
        keys = path[len("payload.") :].split(".")

        def read_payload(event: events.Event) -> float | None:
            found: Any = event.payload
            for key in keys:
                if not isinstance(found, Mapping):
                    return None
                found = found.get(key)
            return _number(found)

        return read_payload

    def read_label(event: events.Event) -> float | None:
        return _number(event.find_label(path))

    return read_label


class MetricRuntime:
    """One loaded metric trigger: its settings, its groups and its persisted chunks.

    Attributes:
        automation_id: The owning automation.
        trigger: The metric trigger.
        match_trigger: The event trigger the matcher is given for it.
        parent: The composite runtime it reports to, or None at the top level.
        groups: The live groups by key.
        chunks: ``(expires, seq)`` of the chunks written (see ``metrics.records``).
        next_seq: The next chunk's number.
        alive: False once unloaded or replaced.
    """

    def __init__(
        self,
        automation_id: str,
        trigger: triggers.MetricTrigger,
        parent: CompositeRuntime | None,
    ) -> None:
        self.automation_id = automation_id
        self.trigger = trigger
        self.trigger_id = trigger.id
        self.parent = parent
        self.alive = True
        query = trigger.metric
        self.query = query
        names, value, aggregation = query.resolved()
        self.value = value
        self.aggregation = aggregation
        self.range = query.range
        self.firing_for = query.firing_for
        self.breach = metric_queries.breach_test(query.operator, query.threshold)
        self.horizon = max(query.range, MIN_OPEN_HORIZON)
        self.match_trigger = triggers.EventTrigger(
            id=trigger.id,
            match=trigger.match,
            match_related=trigger.match_related,
            after=(),
            expect=tuple(sorted(set(names))),
            for_each=(),
            posture=triggers.Posture.REACTIVE,
            threshold=1,
            within=0.0,
        )
        self.label_names: tuple[str, ...] = query.for_each
        self._readers = tuple(buckets.label_reader(label) for label in self.label_names)
        self.groups: dict[BucketKey, Group] = {}
        self.chunks: list[tuple[float, int]] = []
        self.next_seq = 0
        self.legacy_entities: list[str] = []  # keys of metric_entity records still stored
        self._codes: dict[str, int] = {}
        self._field = (
            field_reader(value.path) if isinstance(value, metric_queries.FieldValue) else None
        )
        self._entity = (
            buckets.label_reader(value.key)
            if isinstance(value, metric_queries.Between | metric_queries.Outcome)
            else None
        )
        self._classes: list[tuple[int, re.Pattern[str] | None]] = []
        if isinstance(value, metric_queries.Between):
            self._classes = [(START, _names_regex(value.start)), (END, _names_regex(value.end))]
        elif isinstance(value, metric_queries.Outcome):
            self._classes = [
                (START, _names_regex(value.start)),
                (FAILURE, _names_regex(value.failure)),
            ]
            if value.success is not None:
                self._classes.append((SUCCESS, _names_regex(value.success)))
        self._success_is_rest = isinstance(value, metric_queries.Outcome) and value.success is None
        self._counts = isinstance(value, metric_queries.Count)
        self.entity_keys = EntityKeys()
        self._empty_breaches = aggregation in ("count", "rate", "sum") and metric_queries.breaches(
            0.0, query.operator, query.threshold
        )
        self._as_of = -math.inf
        self._cutoff = -math.inf

    # ------------------------------------------------------------------ keys and groups

    def group_key(self, event: events.Event) -> BucketKey:
        """The group an event belongs to (``for_each`` values, "" for a missing label)."""
        readers = self._readers
        if not readers:
            return ()
        if len(readers) == 1:
            return readers[0](event)
        return tuple([read(event) for read in readers])

    def key_values(self, key: BucketKey) -> tuple[str, ...]:
        """A group key as a tuple of label values."""
        return (key,) if isinstance(key, str) else key

    def key_from_values(self, values: Sequence[str]) -> BucketKey:
        """The group key for stored label values."""
        if len(self.label_names) == 1 and len(values) == 1:
            return values[0]
        return tuple(values)

    def labels(self, key: BucketKey) -> dict[str, str]:
        """A firing's ``triggering_labels``: each ``for_each`` label and the group's value."""
        return dict(zip(self.label_names, self.key_values(key), strict=True))

    def group(self, key: BucketKey) -> Group:
        """The group for ``key``, created empty if there is none."""
        group = self.groups.get(key)
        if group is None:
            window = Window(
                self.aggregation,
                with_entities=isinstance(self.value, metric_queries.Outcome),
                ones=self._counts,
            )
            group = self.groups[key] = Group(key, window, self)
        return group

    # ------------------------------------------------------------------ events

    def _code(self, name: str) -> int:
        code = self._codes.get(name)
        if code is None:
            code = 0
            for flag, regex in self._classes:
                if regex is not None and regex.match(name):
                    code |= flag
            if self._success_is_rest and not code & FAILURE:
                code |= SUCCESS
            if len(self._codes) >= _NAME_CACHE_LIMIT:
                self._codes.clear()
            self._codes[name] = code
        return code

    def feed_many(self, batch: Sequence[events.Event], as_of: float, marked: list[Group]) -> None:
        """Takes up covered events, in order, at event time ``as_of``.

        Each group fed gets the event as its ``last_event``; a group fed that was not marked is
        marked and appended to ``marked`` (to evaluate at the engine's next settle).
        """
        if not self._counts:
            feed = self.feed
            for event in batch:
                group = feed(event, as_of)
                if group is not None:
                    group.last_event = event
                    if not group.marked:
                        group.marked = True
                        marked.append(group)
            return
        # a count, the most common metric: inlined (one sample of 1 per fresh event)
        if as_of != self._as_of:
            self._as_of = as_of
            self._cutoff = quantize(as_of - self.range)
        cutoff = self._cutoff
        readers = self._readers
        read = readers[0] if len(readers) == 1 else self.group_key
        groups = self.groups
        for event in batch:
            occurred = event.occurred
            at = occurred if occurred < as_of else as_of
            if at <= cutoff:
                continue
            key = read(event)
            group = groups.get(key)
            if group is None:
                group = self.group(key)
            window = group.window
            times = window.times
            if times and at < times[-1]:
                window.add(at, 1.0)
            else:
                times.append(at)
            unsaved = group.unsaved_times
            if unsaved is None:
                group.unsaved_times = array.array("d", (at,))
            else:
                unsaved.append(at)
            group.last_event = event
            if not group.marked:
                group.marked = True
                marked.append(group)

    def feed(self, event: events.Event, as_of: float) -> Group | None:
        """Takes up one covered event of a metric that is no count (see :meth:`feed_many`)."""
        if as_of != self._as_of:
            self._as_of = as_of
            self._cutoff = quantize(as_of - self.range)
        occurred = event.occurred
        at = occurred if occurred < as_of else as_of
        fresh = at > self._cutoff
        value = self.value
        if self._field is not None:
            number = self._field(event)
            if number is None or not fresh:
                return None
            group = self.group(self.group_key(event))
            group.add_sample(at, number)
            return group
        assert self._entity is not None
        label = self._entity(event)
        code = self._code(event.event)
        if not label or not code:
            return None
        entity = self.entity_keys.pack(label)
        if isinstance(value, metric_queries.Between):
            return self._feed_between(event, entity, code, at, fresh)
        return self._feed_outcome(event, entity, code, at, fresh)

    def _feed_between(
        self, event: events.Event, entity: EntityKey, code: int, at: float, fresh: bool
    ) -> Group | None:
        key = self.group_key(event)
        group = self.groups.get(key)
        horizon = self.horizon
        if code & END and group is not None and group.open:
            start = group.open.pop(entity, None)
            if start is not None:
                group.mark_entity(entity, start + horizon)
                length = quantize(event.occurred - start)
                # a stale interval (see _forget_stale) is forgotten, never measured
                if fresh and length >= 0 and start > self._as_of - horizon:
                    group.add_sample(at, length)
        if code & START:
            group = self.group(key)
            if group.open is None:
                group.open = {}
            previous = group.open.get(entity)
            group.mark_entity(entity, None if previous is None else previous + horizon)
            group.open[entity] = event.occurred
            if event.occurred < group.open_floor:
                group.open_floor = event.occurred
        return group

    def _feed_outcome(
        self, event: events.Event, entity: EntityKey, code: int, at: float, fresh: bool
    ) -> Group | None:
        key = self.group_key(event)
        group = self.groups.get(key)
        taken = None if group is None or group.entities is None else group.entities.get(entity)
        if taken is None:
            if not code & START or not fresh:
                return None
            group = self.group(key)
            if group.entities is None:
                group.entities = {}
            group.entities[entity] = at
            failed = bool(code & FAILURE)
            if failed:
                group.failed = group.failed or set()
                group.failed.add(entity)
            group.window.add(at, 0.0 if failed else 1.0, entity)
            group.mark_entity(entity, None)
            return group
        assert group is not None
        if code & FAILURE:
            failed = True
        elif code & SUCCESS:
            failed = False
        else:
            return group
        was_failed = group.failed is not None and entity in group.failed
        if failed != was_failed:
            if failed:
                group.failed = group.failed or set()
                group.failed.add(entity)
            elif group.failed is not None:
                group.failed.discard(entity)
            group.window.replace(taken, entity, 0.0 if failed else 1.0)
            group.mark_entity(entity, taken + self.range)
        return group

    # ------------------------------------------------------------------ time

    def forgettable(self, group: Group, as_of: float) -> bool:
        """Whether the group can be dropped at once, without evaluating it.

        True when it is Resolved with nothing pending or open, every sample is out of the window
        by ``as_of``, and an empty window is no breach.
        """
        if group.triggered or group.since is not None or group.open or group.entities:
            return False
        if self._empty_breaches or group.unsaved_times is not None:
            return False
        times = group.window.times
        if as_of != self._as_of:
            self._as_of = as_of
            self._cutoff = quantize(as_of - self.range)
        return not times or times[-1] <= self._cutoff

    def slide(self, group: Group, as_of: float) -> float | None:
        """Drops what left the window by ``as_of`` (and stale open intervals); returns the value."""
        if as_of != self._as_of:
            self._as_of = as_of
            self._cutoff = quantize(as_of - self.range)
        window = group.window
        times = window.times
        if window.head < len(times) and times[window.head] <= self._cutoff:
            self._expire(group)
        if group.open and group.open_floor <= as_of - self.horizon:
            self._forget_stale(group, as_of - self.horizon)
        if self._counts:
            n = len(times) - window.head
            aggregation = self.aggregation
            if aggregation == "count":
                return float(n)
            if aggregation == "rate":
                return n / self.range
        return window.aggregate(self.aggregation, self.range)

    def _expire(self, group: Group) -> None:
        gone = group.window.expire(self._cutoff)
        if gone and group.entities is not None:
            for entity in gone:
                group.entities.pop(entity, None)
                if group.failed is not None:
                    group.failed.discard(entity)  # its record is stale by now: none written

    def _forget_stale(self, group: Group, stale: float) -> None:
        assert group.open is not None
        for entity in [e for e, start in group.open.items() if start <= stale]:
            del group.open[entity]  # its record is stale by now: none written
        group.open_floor = min(group.open.values(), default=math.inf)
