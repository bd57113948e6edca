"""Buckets restored on demand: a taken-over cluster partition evaluates before its state is built.

A partition's new owner reads all of its records at once (one query, kept as the stored tuples),
but turns into :class:`~automations.engine.buckets.Bucket` objects at once only what cannot wait:
every record that is not a ``for_each`` bucket (the event clock, held followers, composite and
metric state, resolutions, one-key buckets such as an I1 trigger's window) and the buckets due
within :data:`LOAD_AHEAD` of event time. The rest waits here, by trigger and key, and is restored:

* **on touch**: before an event is evaluated by a trigger, the bucket of its key
  (:meth:`DeferredBuckets.touch`), so the event meets exactly the state it would have met;
* **when due**: the engine's deadlines include the earliest waiting one, and everything due by an
  :meth:`~automations.engine.trigger_engine.TriggerEngine.advance` is restored before its
  deadlines are taken, so deadlines of one instant fire together, in the usual order;
* **in the background**: in due order, a chunk at a time between commits (:meth:`restore_some`);
* **before an automation changes**: all of its buckets (:meth:`restore_automation`), so an update
  keeps or deletes them as it does loaded ones; an unloaded automation's are dropped.

Restoring a bucket writes nothing: it equals its stored record, as after an eager restore. Until
every bucket is restored the store stays the truth for the waiting ones; losing the partition
drops them with the engine, and the next owner reads them again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from automations.domain import events
from automations.engine import loading, records, restore, state
from automations.engine.buckets import DueEntry, TriggerRuntime
from automations.engine.clock import EventClock

LOAD_AHEAD = 5.0
"""Event-time seconds: buckets due within this of the takeover are restored with it."""

Row = tuple[str, str, str, str, Any, float | None]
"""A stored record: ``(automation_id, trigger_id, kind, key, data, due)``, ``data`` encoded."""


class DeferredBuckets:
    """The bucket records of one engine not restored yet, by trigger and key, and by due time.

    Args:
        loaded: The engine's loaded automations by id (read when a record is restored).
        heap: The engine's deadline heap (a restored bucket is scheduled in it).
        deletes: The engine's pending deletions (records of triggers that no longer exist).
        clock: The engine's event clock (to tell when a waiting bucket is due in wall time).
    """

    def __init__(
        self,
        loaded: Mapping[str, loading.Loaded],
        heap: list[DueEntry],
        deletes: list[state.StateRecord],
        clock: EventClock,
    ) -> None:
        self._clock = clock
        self._loaded = loaded
        self._heap = heap
        self._deletes = deletes
        self._by_trigger: dict[tuple[str, str], dict[str, Row]] = {}
        self._order: list[Row] = []
        self._next = 0
        self._sorted = True
        self._count = 0

    def __len__(self) -> int:
        """How many records wait."""
        return self._count

    def split(
        self, rows: Iterable[state.RecordLike], runtimes: Iterable[TriggerRuntime], until: float
    ) -> Iterator[state.RecordLike]:
        """Keeps the ``for_each`` bucket records due after ``until``; yields the others.

        Args:
            rows: Stored records (StateRecords or 6-tuples).
            runtimes: The runtimes being loaded; the buckets of those with ``for_each`` labels
                may wait (one without them has one bucket, which an I1 trigger's loading seeks).
            until: Event time: a bucket due by then is yielded (restored at once).
        """
        triggers = {(rt.automation_id, rt.trigger_id) for rt in runtimes if rt.label_names}
        for row in rows:
            if isinstance(row, state.StateRecord):
                row = (row.automation_id, row.trigger_id, row.kind, row.key, row.data, row.due)
            due = row[5]
            if (
                row[2] == state.BUCKET
                and due is not None
                and due > until
                and (row[0], row[1]) in triggers
            ):
                self._add(row)
            else:
                yield row

    def _restore(self, rows: list[Row]) -> None:
        restore.restore_records(self._target, rows, self._heap, self._deletes)

    def _target(self, automation_id: str) -> restore.Target | None:
        loaded = self._loaded.get(automation_id)
        return None if loaded is None else loaded.target(set())

    def _add(self, row: Row) -> None:
        keys = self._by_trigger.setdefault((row[0], row[1]), {})
        if row[3] not in keys:
            self._count += 1
        keys[row[3]] = row
        self._order.append(row)
        self._sorted = False

    def touch(self, runtime: TriggerRuntime, event: events.Event) -> None:
        """Restores the bucket ``event`` is about to use in ``runtime``, if it waits.

        The event's key is only worked out for a trigger that still has buckets waiting.
        """
        keys = self._by_trigger.get((runtime.automation_id, runtime.trigger_id))
        if keys:
            row = keys.pop(records.key_text(runtime.bucketing_key(event)), None)
            if row is not None:
                self._count -= 1
                self._restore([row])

    def next_due(self) -> float | None:
        """The wall time at which the earliest waiting bucket is due, or None."""
        row = self._peek()
        return None if row is None else self._clock.due_at(_due(row))

    def restore_due(self, as_of: float) -> int:
        """Restores every waiting bucket due at or before event time ``as_of``; returns how many."""
        taken: list[Row] = []
        while (row := self._peek()) is not None and row[5] is not None and row[5] <= as_of:
            taken.append(self._take_next())
        if taken:
            self._restore(taken)
        return len(taken)

    def restore_some(self, limit: int) -> int:
        """Restores up to ``limit`` waiting buckets, the earliest due first; returns how many."""
        taken: list[Row] = []
        while len(taken) < limit and self._peek() is not None:
            taken.append(self._take_next())
        if taken:
            self._restore(taken)
        return len(taken)

    def restore_automation(self, automation_id: str) -> int:
        """Restores every waiting bucket of one automation (before it changes)."""
        taken = self._take_automation(automation_id)
        if taken:
            self._restore(taken)
        return len(taken)

    def drop_automation(self, automation_id: str) -> int:
        """Forgets the waiting buckets of an unloaded automation; returns how many."""
        return len(self._take_automation(automation_id))

    def _take_automation(self, automation_id: str) -> list[Row]:
        taken: list[Row] = []
        for trigger in [t for t in self._by_trigger if t[0] == automation_id]:
            taken.extend(self._by_trigger.pop(trigger).values())
        self._count -= len(taken)
        return taken

    def _peek(self) -> Row | None:
        """The earliest due waiting record (records restored or dropped since are skipped)."""
        order = self._order
        if not self._sorted:
            del order[: self._next]
            order.sort(key=_due)
            self._next = 0
            self._sorted = True
        while self._next < len(order):
            row = order[self._next]
            keys = self._by_trigger.get((row[0], row[1]))
            if keys is not None and keys.get(row[3]) is row:
                return row
            self._next += 1
        if order:
            order.clear()
            self._next = 0
        return None

    def _take_next(self) -> Row:
        row = self._order[self._next]
        self._next += 1
        keys = self._by_trigger[(row[0], row[1])]
        del keys[row[3]]
        if not keys:
            del self._by_trigger[(row[0], row[1])]
        self._count -= 1
        return row


def _due(row: Row) -> float:
    due = row[5]
    return 0.0 if due is None else due
