"""The metric triggers of a :class:`~automations.engine.trigger_engine.TriggerEngine`.

The facade hands this object the events that touch metric triggers and calls it at the end of
every ``process`` and ``advance``:

* the facade appends each covered event to its metric trigger's list in :attr:`MetricEngine.inbox`
  and :meth:`MetricEngine.take_inbox` feeds every list to its trigger in one call (each event into
  its group: a sample, an interval, an outcome), marking the groups fed for evaluation;
* :meth:`MetricEngine.settle` evaluates the marked groups at the engine's event time: samples that
  left the window are dropped, the value is computed and the group's state machine is stepped; a
  change is a firing (Triggered ones go through composite parents like any child firing, Resolved
  ones only count at the top level);
* :meth:`MetricEngine.advance` first marks the groups due by then (``firing_for`` reached, or a
  sample leaving the window, at most once a second per group: one deadline per group);
* :meth:`MetricEngine.write` adds the changed state to the step (``metrics.records``).

So a metric is evaluated incrementally, as its events arrive and when its window slides; the
event log is never read.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import orjson

from automations.domain import events, firings, triggers
from automations.engine.clock import EventClock
from automations.engine.metrics import records
from automations.engine.metrics.groups import Group
from automations.engine.metrics.runtime import MetricRuntime
from automations.engine.state import StateRecord, Step

if TYPE_CHECKING:
    from automations.engine.composite import CompositeRuntime

Emit = Callable[[firings.Firing, "CompositeRuntime | None"], None]
"""How a metric firing reaches the facade: the firing and the composite parent to report to."""
MetricRecord = tuple[MetricRuntime, str, str, Any, "float | None"]
"""A stored record of a metric trigger, as ``restore`` hands it over: runtime, kind, key, data,
due."""


class MetricEngine:
    """Every loaded metric trigger, its scheduling and its records.

    Args:
        clock: The engine's event clock (metric windows are on event time).
        emit: Takes each firing.
        new_id: Makes firing ids from a seed and a time.
    """

    def __init__(self, clock: EventClock, emit: Emit, new_id: Callable[[str, float], str]) -> None:
        self._clock = clock
        self._emit = emit
        self._new_id = new_id
        self._by_object: dict[int, MetricRuntime] = {}
        self.inbox: dict[int, list[events.Event]] = {}
        """Per metric trigger (by ``id`` of its match trigger): the covered events of the current
        batch, in order, to feed at the next :meth:`take_inbox`."""
        # the groups due at each instant, and a heap of those instants
        self._ticks: dict[float, list[tuple[Group, int]]] = {}
        self._tick_heap: list[float] = []
        self._marked: list[Group] = []  # to evaluate at the next settle
        self._dirty: list[Group] = []  # evaluated: to write at the next write
        self._pending: list[Group] = []
        self._deletes: list[StateRecord] = []
        self._as_of: float | None = None  # the event time of the events being fed

    # ------------------------------------------------------------------ loading

    def build(
        self,
        automation_id: str,
        trigger: triggers.MetricTrigger,
        parent: CompositeRuntime | None,
        reused: MetricRuntime | None,
    ) -> MetricRuntime:
        """The runtime of a metric trigger: ``reused`` (its state kept) or a new one."""
        if reused is not None and reused.trigger == trigger:
            reused.parent = parent
            reused.automation_id = automation_id
            return reused
        return MetricRuntime(automation_id, trigger, parent)

    def activate(self, rt: MetricRuntime) -> None:
        """Registers a runtime (new, reused or restored) and schedules its groups."""
        rt.alive = True
        self._by_object[id(rt.match_trigger)] = rt
        self.inbox[id(rt.match_trigger)] = []
        if not rt.label_names and () not in rt.groups:
            rt.group(())  # one series without for_each: evaluated from the start, data or not
        for group in rt.groups.values():
            group.alive = True
            self._pending.append(group)

    def forget(self, rt: MetricRuntime) -> None:
        """Unregisters a runtime (its automation was unloaded or its trigger replaced)."""
        rt.alive = False
        self._by_object.pop(id(rt.match_trigger), None)
        self.inbox.pop(id(rt.match_trigger), None)

    def deletes(self, rt: MetricRuntime) -> list[StateRecord]:
        """Deletions of every record of a removed metric trigger."""
        for group in rt.groups.values():
            group.alive = False
        return records.all_deletes(rt)

    def restore(self, items: Iterable[MetricRecord]) -> None:
        """Takes back stored records (each naming its runtime); call :meth:`activate` after."""
        restoring: dict[int, records.Restoring] = {}
        for rt, kind, key, data, due in items:
            decoded = orjson.loads(data) if isinstance(data, bytes | str) else data
            target = restoring.get(id(rt))
            if target is None:
                target = restoring[id(rt)] = records.Restoring(rt)
            target.add(kind, key, decoded, due)
        for target in restoring.values():
            target.finish()

    # ------------------------------------------------------------------ work

    def take_inbox(self, now: float) -> None:
        """Feeds each metric trigger the events appended to its :attr:`inbox` list, in order.

        A list is keyed by the ``id`` of its trigger's match trigger, which the runtime holds:
        an id in the inbox is always that live object's.
        """
        as_of = self._as_of
        marked = self._marked
        for key, fed in self.inbox.items():
            if fed:
                if as_of is None:  # the clock took up the whole batch before it is evaluated
                    as_of = self._as_of = self._clock.as_of(now)
                self._by_object[key].feed_many(fed, as_of, marked)
                fed.clear()

    def _mark(self, group: Group) -> None:
        if not group.marked:
            group.marked = True
            self._marked.append(group)

    def advance(self, now: float) -> None:
        """Evaluates every group due by ``now`` (and the ones fed since the last call)."""
        as_of = self._clock.as_of(now)
        tick_heap, ticks = self._tick_heap, self._ticks
        while tick_heap and tick_heap[0] <= as_of:
            for group, token in ticks.pop(heapq.heappop(tick_heap)):
                if group.token == token and group.alive:
                    self._mark(group)
        self.settle(now)

    def settle(self, now: float) -> None:
        """Evaluates the groups fed (or due) since the last call, at the event time of ``now``."""
        self._as_of = None
        if self._pending:
            for group in self._pending:
                self._mark(group)
            self._pending = []
        if not self._marked:
            return
        as_of = self._clock.as_of(now)
        marked = self._marked  # fed ones in the order they were fed, then due ones
        self._marked = []
        dirty = self._dirty
        changes: list[tuple[MetricRuntime, Group, firings.FiringState, float | None, Any]] = []
        for group in marked:
            group.marked = False
            if not group.dirty:
                group.dirty = True
                dirty.append(group)
            rt: MetricRuntime = group.runtime  # type: ignore[assignment]
            event, group.last_event = group.last_event, None
            if not (rt.alive and group.alive):
                continue
            # a group fed samples in this call is never forgettable: skip the call
            if group.unsaved_times is None and rt.forgettable(group, as_of):
                group.alive = False
                del rt.groups[group.key]
                continue
            value = rt.slide(group, as_of)
            group.evaluated = as_of
            change = group.step(value, as_of, rt.breach, rt.firing_for)
            if change is not None:
                changes.append((rt, group, change, value, event))
            due = group.next_due(rt.range, rt.firing_for, rt.horizon)
            if due is None and group.idle():
                group.alive = False
                del rt.groups[group.key]
            elif due != group.due:
                group.due = due
                if due is not None:
                    self._schedule(group, due)
        if len(changes) > 1:  # changes of one instant: by trigger, then group key
            changes.sort(key=_change_order)
        for rt, group, change, value, event in changes:
            self._fire(rt, group, change, value, event, now)

    def _schedule(self, group: Group, due: float) -> None:
        group.token += 1
        bucket = self._ticks.get(due)
        if bucket is None:
            self._ticks[due] = [(group, group.token)]
            heapq.heappush(self._tick_heap, due)
        else:
            bucket.append((group, group.token))

    def _fire(
        self,
        rt: MetricRuntime,
        group: Group,
        change: firings.FiringState,
        value: float | None,
        event: events.Event | None,
        now: float,
    ) -> None:
        if change is firings.FiringState.RESOLVED and rt.parent is not None:
            return  # a composite trigger takes Triggered child firings only
        at = event.occurred if event is not None else now
        seed = f"{rt.automation_id}\x1f{rt.trigger_id}\x1f{group.key!r}\x1f{change.value}\x1f{at}"
        firing = firings.Firing(
            id=self._new_id(seed, at),
            automation_id=rt.automation_id,
            trigger_id=rt.trigger_id,
            trigger_type="metric",
            posture="Metric",
            triggered=now,
            triggering_event=event,
            triggering_labels=rt.labels(group.key),
            state=change,
            triggering_value=value,
        )
        self._emit(firing, rt.parent)

    def next_due(self) -> float | None:
        """The next wall time at which :meth:`advance` has work, or None."""
        if self._pending or self._marked:
            return 0.0  # evaluated at the next call
        tick_heap, ticks = self._tick_heap, self._ticks
        while tick_heap:
            tick = tick_heap[0]
            bucket = ticks[tick]
            group, token = bucket[0]
            if group.token == token and group.alive:
                return self._clock.due_at(tick)
            bucket[:] = [(g, t) for g, t in bucket if g.token == t and g.alive]
            if bucket:
                return self._clock.due_at(tick)
            del ticks[heapq.heappop(tick_heap)]
        return None

    # ------------------------------------------------------------------ records

    def write(self, step: Step, now: float) -> None:
        """Adds the records of everything changed since the last call to ``step``."""
        chunks: dict[int, tuple[MetricRuntime, records.Chunk]] = {}
        dirty, self._dirty = self._dirty, []
        for group in dirty:
            group.dirty = False
            if not (group.state_dirty or group.entity_dirty or group.unsaved_times is not None):
                continue
            rt: MetricRuntime = group.runtime  # type: ignore[assignment]
            if not rt.alive:
                continue
            found = chunks.get(id(rt))
            if found is None:
                found = chunks[id(rt)] = (rt, records.Chunk())
            records.write_group(rt, group, step, found[1])
        as_of = self._clock.as_of(now)
        for rt, chunk in chunks.values():
            records.write_chunk(rt, chunk, step)
        for rt in self._by_object.values():
            if rt.chunks and rt.chunks[0][0] <= as_of:
                records.expire_chunks(rt, as_of, step)
        if self._deletes:
            step.deletes.extend(self._deletes)
            self._deletes = []

    def snapshot(self) -> list[StateRecord]:
        """Every metric trigger's state as records."""
        out: list[StateRecord] = []
        for rt in self._by_object.values():
            out.extend(records.snapshot(rt))
        return out

    def live_groups(self) -> int:
        """How many metric groups are held in memory."""
        return sum(len(rt.groups) for rt in self._by_object.values())


def _change_order(change: tuple[MetricRuntime, Group, Any, Any, Any]) -> tuple[Any, ...]:
    rt, group = change[0], change[1]
    return (rt.automation_id, rt.trigger_id, rt.key_values(group.key))
