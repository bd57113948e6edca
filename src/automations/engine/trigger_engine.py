"""The facade the pipeline (and simulation) uses: load automations, feed events, advance time.

Shape::

    engine = TriggerEngine(matcher, new_id=...)
    engine.restore_global(records)                  # engine-wide state (automation_id == "")
    engine.load_automation(automation, records)     # per automation, with its persisted state
    step = engine.process(events, now)              # a batch of received events at wall time now
    step = engine.advance(now)                      # everything due at or before now
    engine.next_due()                               # when advance() next has work (wall time)

Each call returns a :class:`~automations.engine.state.Step`: the top-level firings it caused and the
state records to persist in the same transaction. A record identity appears at most once in a step
(in ``upserts`` or in ``deletes``), so the two lists can be applied in either order. Records are
written by ``records`` and read back into runtimes by ``restore``.

Order of work inside :meth:`TriggerEngine.advance`: proactive deadlines due on the event clock
(ordered by automation load order, trigger position, window start, then key), then held followers
that are lost by ``now`` (in ``occurred`` order), then the sweep of buckets that ended 60 s ago
(reactive ones, and any that those lost followers opened), as Prefect's periodic pass does.
Inside :meth:`TriggerEngine.process`: dedup and causal ordering first, then, for each event in
evaluation order, each touched trigger in load order.

Times are float seconds since the Unix epoch. ``now`` must never go backwards between calls.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence

from automations.domain import automations, events, firings, ids
from automations.engine import deferred as deferred_
from automations.engine import event_firings, loading, matching, records, restore, state
from automations.engine import ordering as ordering_
from automations.engine.buckets import (
    EXPIRED_BUCKET_BUFFER,
    Bucket,
    BucketKey,
    DueEntry,
    TriggerRuntime,
    drop_satisfied,
    scheduled,
)
from automations.engine.clock import EventClock, quantize
from automations.engine.composite import CompositeRuntime
from automations.engine.metrics.host import MetricEngine, MetricRecord
from automations.engine.ordering import CausalOrdering
from automations.engine.state import StateRecord, Step


def _default_id() -> str:
    return ids.uuid7()


class TriggerEngine:
    """Prefect's trigger semantics over a :class:`~automations.engine.matching.Matcher`.

    Pure and single-threaded: call it from one thread (or one asyncio task) only.
    """

    def __init__(
        self,
        matcher: matching.Matcher,
        *,
        new_id: Callable[[], str] = _default_id,
        max_seen: int = ordering_.MAX_SEEN,
        persist_seen: bool = True,
        clock: EventClock | None = None,
        derive_ids: bool = False,
    ) -> None:
        """Creates an engine with nothing loaded.

        Args:
            matcher: Finds the triggers an event touches.
            new_id: Makes firing ids (deterministic ones in simulations).
            max_seen: Processed event ids remembered (30 minutes at most) for dedup and ``follows``.
            persist_seen: Emit ``seen`` records (one per call, listing its processed ids), so that
                dedup and ``follows`` survive a restart exactly; off when the caller dedups itself
                and accepts that a follower of a pre-restart leader waits until it is lost.
            clock: The event clock, when engines share one (a cluster replica's partitions).
            derive_ids: Derive firing ids from what determines each firing (``ids.derived``)
                instead of ``new_id``: evaluating the same input again gives the same ids.
        """
        self.matcher = matcher
        self.new_id = new_id
        self.derive_ids = derive_ids
        self.persist_seen = persist_seen
        self.clock = clock if clock is not None else EventClock()
        self.ordering = CausalOrdering(self.clock, max_seen=max_seen)
        self._automations: dict[str, loading.Loaded] = {}
        self._order = 0
        self._by_object: dict[int, TriggerRuntime] = {}
        self._by_id: dict[tuple[str, str], TriggerRuntime] = {}
        self._heap: list[DueEntry] = []
        self._satisfied: list[tuple[float, TriggerRuntime, Bucket]] = []
        self._pending_open: list[TriggerRuntime] = []
        self._dirty_runtimes: set[TriggerRuntime] = set()
        self._dirty_composites: set[CompositeRuntime] = set()
        self._pending_deletes: list[StateRecord] = []
        self._firings: list[firings.Firing] = []
        self._seen = records.SeenChunks()
        self._resolving: dict[int, TriggerRuntime] = {}
        self.metrics = MetricEngine(self.clock, self._emit, self.firing_id)
        """The metric triggers (``engine.metrics``)."""
        self.deferred: deferred_.DeferredBuckets | None = None
        """Bucket records not restored yet (``engine.deferred``), or None once all are."""

    # ================================================================== loading

    def load_automation(
        self,
        automation: automations.Automation,
        state_records: Iterable[state.RecordLike] = (),
        *,
        now: float | None = None,
    ) -> None:
        """Loads (or updates) an enabled automation, restoring its persisted state.

        On an update, triggers whose id is unchanged keep their state; the state of the others is
        dropped (their deletions come with the next step). A proactive trigger without ``after``
        and ``for_each`` opens its first window at ``now`` (event-clock time), or at the next call.

        Args:
            automation: The automation; the caller does not load disabled ones.
            state_records: Its persisted records (ignored for triggers that keep in-memory state):
                StateRecords, or 6-tuples in their field order (``data`` may be encoded JSON);
                read once, so a stream straight from a database cursor will do.
            now: Wall time of loading, if known.
        """
        loaded, kept = self._prepare(automation)
        target = loaded.target(kept)
        metric_records: list[MetricRecord] = []
        restore.restore_records(
            lambda _: target, state_records, self._heap, self._pending_deletes, metric_records
        )
        self.metrics.restore(metric_records)
        self._activate(loaded, now)

    def load_automations(
        self,
        items: Sequence[automations.Automation],
        state_records: Iterable[state.RecordLike] = (),
        *,
        now: float | None = None,
        defer_after: float | None = None,
    ) -> int:
        """Loads several automations (in order) and their records, in any order, in one pass.

        What a restart uses: the store can then hand over its whole table in storage order (one
        sequential scan) instead of one index-ordered query per automation, whose random row
        reads took ~3.4 us per record (2M records: 6.9 of 18 s to SERVING). Records of
        automations not in ``items`` are ignored.

        Args:
            items: The automations (enabled ones), in load order.
            state_records: Their persisted records, each naming its automation.
            now: Wall time of loading, if known.
            defer_after: Event time: ``for_each`` buckets due after it are restored on demand
                (``engine.deferred``); None restores every record now.

        Returns:
            The number of records read (deferred ones included).
        """
        prepared = {automation.id: self._prepare(automation) for automation in items}
        targets = {aid: loaded.target(kept) for aid, (loaded, kept) in prepared.items()}
        if defer_after is not None:
            if self.deferred is None:
                self.deferred = deferred_.DeferredBuckets(
                    self._automations, self._heap, self._pending_deletes, self.clock
                )
            runtimes = [rt for ld, _ in prepared.values() for rt in ld.event_runtimes.values()]
            state_records = self.deferred.split(state_records, runtimes, defer_after)
        metric_records: list[MetricRecord] = []
        read = restore.restore_records(
            targets.get, state_records, self._heap, self._pending_deletes, metric_records
        )
        self.metrics.restore(metric_records)
        for loaded, _ in prepared.values():
            self._activate(loaded, now)
        return read

    def _prepare(self, automation: automations.Automation) -> tuple[loading.Loaded, set[str]]:
        """Builds an automation's runtimes, taking over the state of unchanged triggers."""
        if self.deferred is not None:  # an update keeps or deletes them as loaded ones
            self.deferred.restore_automation(automation.id)
        old = self._automations.pop(automation.id, None)
        if old is not None:
            order = old.order
        else:
            order = self._order
            self._order += 1
        loaded = loading.build(automation, order, self, self.metrics, old)
        if old is None:
            return loaded, set()
        self._forget_runtimes(old)
        outcome = loading.take_over(old, loaded, self.metrics)
        self._pending_deletes.extend(outcome.deletes)
        self._dirty_runtimes.update(outcome.dirty_runtimes)
        self._dirty_composites.update(outcome.dirty_composites)
        for rt, bucket in outcome.schedule:
            self.schedule(rt, bucket)
        return loaded, outcome.kept

    def _activate(self, loaded: loading.Loaded, now: float | None) -> None:
        """Registers prepared runtimes with the engine and the matcher."""
        aid = loaded.automation.id
        self._automations[aid] = loaded
        for rt in loaded.event_runtimes.values():
            self._by_object[id(rt.trigger)] = rt
            self._by_id[(aid, rt.trigger_id)] = rt
            if rt.resolving is not None:
                self._resolving[id(rt)] = rt
        for mr in loaded.metric_runtimes.values():
            self.metrics.activate(mr)
        self.matcher.load(aid, loaded.match_triggers())
        for rt in loaded.event_runtimes.values():
            if rt.watches_always and () not in rt.buckets:
                if now is not None:
                    rt.open_first_window(self.clock.as_of(now))
                    for bucket in rt.buckets.values():
                        if bucket.scheduled != bucket.token:
                            self.schedule(rt, bucket)
                else:
                    self._pending_open.append(rt)

    def _forget_runtimes(self, loaded: loading.Loaded) -> None:
        for rt in loaded.event_runtimes.values():
            rt.alive = False
            self._by_object.pop(id(rt.trigger), None)
            self._by_id.pop((rt.automation_id, rt.trigger_id), None)
            self._dirty_runtimes.discard(rt)
            self._resolving.pop(id(rt), None)
        for mr in loaded.metric_runtimes.values():
            self.metrics.forget(mr)
        for cr in loaded.composites.values():
            cr.alive = False
            self._dirty_composites.discard(cr)

    def unload_automation(self, automation_id: str) -> None:
        """Unloads an automation (deleted or disabled); its stored state is left to the caller."""
        if self.deferred is not None:
            self.deferred.drop_automation(automation_id)
        loaded = self._automations.pop(automation_id, None)
        if loaded is None:
            return
        self._forget_runtimes(loaded)
        self.matcher.unload(automation_id)

    def live_buckets(self) -> int:
        """How many buckets (per trigger and ``for_each`` key) are held (restored or deferred)."""
        waiting = 0 if self.deferred is None else len(self.deferred)
        return waiting + sum(len(runtime.buckets) for runtime in self._by_id.values())

    def scheduled_deadlines(self) -> int:
        """Entries in the deadline heap (stale ones included until they are popped)."""
        return len(self._heap)

    def loaded_automations(self) -> list[str]:
        """Ids of the loaded automations, in load order."""
        return list(self._automations)

    def restore_global(self, records: Iterable[state.RecordLike]) -> None:
        """Restores engine-wide state (records with ``automation_id == ""``).

        Call it before loading automations and before the first :meth:`process`.
        """
        restore.restore_global(records, self.clock, self.ordering, self._seen)

    # ================================================================== host callbacks

    def firing_id(self, seed: str, at: float) -> str:
        """A firing's id: derived from ``seed`` and ``at`` with ``derive_ids``, else ``new_id()``."""
        return ids.derived(seed, at) if self.derive_ids else self.new_id()

    def fire(
        self, runtime: TriggerRuntime, key: BucketKey, event: events.Event | None, now: float
    ) -> None:
        """Called by a trigger runtime when it fires; propagates through composite parents."""
        bucket = runtime.buckets.get(key)
        if runtime.resolving is not None and bucket is not None:
            runtime.resolving.fired(key, bucket.end)
        window = (bucket.start, bucket.end) if bucket is not None else (now, now)
        self._emit(
            event_firings.make(runtime, key, event, now, window, self.firing_id), runtime.parent
        )

    def resolved(
        self, runtime: TriggerRuntime, key: BucketKey, event: events.Event, now: float
    ) -> None:
        """Called when a top-level proactive trigger's key resolves (``engine.resolution``)."""
        self._firings.append(event_firings.make(runtime, key, event, now, None, self.firing_id))

    def _emit(self, firing: firings.Firing, parent: CompositeRuntime | None) -> None:
        """A leaf trigger's firing: through its composite parents, or a top-level firing."""
        while parent is not None:
            result = parent.child_fired(firing, firing.triggered, self.firing_id)
            if parent.dirty:
                self._dirty_composites.add(parent)
            if result is None:
                return
            firing = result
            parent = parent.parent
        self._firings.append(firing)

    def schedule(self, runtime: TriggerRuntime, bucket: Bucket) -> None:
        """Schedules a bucket's deadline (or sweep); done for the buckets alive after a step."""
        bucket.scheduled = token = bucket.token
        heapq.heappush(self._heap, (runtime.due(bucket), bucket, token))

    def changed(self, runtime: TriggerRuntime, key: BucketKey) -> None:
        """Called when a runtime's first bucket of a step changes: persisted at the step's end."""
        self._dirty_runtimes.add(runtime)

    def satisfied(self, runtime: TriggerRuntime, bucket: Bucket, now: float) -> None:
        """Called when a proactive bucket meets its threshold: dropped at the next call."""
        self._satisfied.append((now, runtime, bucket))

    # ================================================================== work

    def process(
        self, batch: Sequence[events.Event], now: float, released: Sequence[str] = ()
    ) -> Step:
        """Takes up a batch of received events at wall time ``now``.

        Args:
            batch: Validated events, in arrival order.
            now: Wall time (seconds since the epoch); the firings' ``triggered``.
            released: Ids of leaders processed elsewhere (a cluster's other partitions) whose
                held followers are taken up after the batch.

        Returns:
            The firings and the state changes to persist with the batch.
        """
        self._begin(now)
        order = self.ordering.take(batch, now)
        if released:
            order += self.ordering.take_released(released, now)
        self._evaluate(order, now)
        self.metrics.settle(now)
        return self._finish(now)

    def advance(self, now: float) -> Step:
        """Does everything due at or before wall time ``now``.

        Proactive deadlines due on the event clock fire first (in order of load, trigger position
        and window start), then lost followers are processed, then expired reactive buckets are
        swept. Deadlines that passed while the engine was down fire once, at ``now``.
        """
        self._begin(now)
        as_of = self.clock.as_of(now)
        if self.deferred is not None:
            self.deferred.restore_due(as_of)
        deadlines: list[tuple[TriggerRuntime, Bucket]] = []
        sweeps: list[tuple[TriggerRuntime, Bucket, int]] = []
        for bucket, token in self._pop_due(as_of):
            rt = bucket.runtime
            if rt is None or not scheduled(rt, bucket, token):
                continue
            if rt.reactive:
                sweeps.append((rt, bucket, token))
            else:
                deadlines.append((rt, bucket))
        # Prefect reads a trigger's buckets ordered by start; on SQLite ties come in key order
        key_text = records.key_text
        deadlines.sort(key=lambda item: (item[0].order, item[1].start, key_text(item[1].key)))
        for rt, bucket in deadlines:
            if rt.alive and bucket.alive and rt.buckets.get(bucket.key) is bucket:
                rt.on_deadline(bucket, as_of, now)
        self._evaluate(self.ordering.take_lost(now), now)
        self.metrics.advance(now)
        # the sweep (Prefect's periodic pass), as of the time computed before lost followers
        requeue: list[tuple[TriggerRuntime, Bucket, int]] = []
        for bucket, token in self._pop_due(as_of):
            rt = bucket.runtime
            if rt is None or not scheduled(rt, bucket, token):
                continue
            if rt.reactive:
                sweeps.append((rt, bucket, token))
            else:
                requeue.append((rt, bucket, token))
        for rt, bucket, token in sweeps:
            if scheduled(rt, bucket, token):
                rt.remove(bucket)
        # buckets that lost followers just opened with an end long past are swept at once too
        for rt in list(self._dirty_runtimes):
            for key in list(rt.dirty):
                opened = rt.buckets.get(key)
                if opened is not None and quantize(opened.end + EXPIRED_BUCKET_BUFFER) <= as_of:
                    rt.remove(opened)
        for rt, bucket, _ in requeue:
            self.schedule(rt, bucket)
        return self._finish(now)

    def next_due(self) -> float | None:
        """The next wall time at which :meth:`advance` has work, or None.

        The time of a deadline depends on the event clock's offset, so it can move after a
        :meth:`process` call: ask again after every call.
        """
        if self._pending_open:
            return 0.0
        best: float | None = None
        heap = self._heap
        while heap:
            due, bucket, token = heap[0]
            rt = bucket.runtime
            if rt is not None and scheduled(rt, bucket, token):
                best = self.clock.due_at(due)
                break
            heapq.heappop(heap)
        waiting = None if self.deferred is None else self.deferred.next_due()
        for other in (self.ordering.next_lost(), self.metrics.next_due(), waiting):
            if other is not None and (best is None or other < best):
                best = other
        return best

    def _pop_due(self, limit: float) -> list[tuple[Bucket, int]]:
        """Removes and returns every heap entry due at or before ``limit``, earliest first."""
        heap = self._heap
        out: list[tuple[Bucket, int]] = []
        while heap and heap[0][0] <= limit:
            _, bucket, token = heapq.heappop(heap)
            out.append((bucket, token))
        return out

    def _begin(self, now: float) -> None:
        if self._satisfied:
            self._satisfied = drop_satisfied(self._satisfied, now)
        if self._pending_open:
            as_of = self.clock.as_of(now)
            for rt in self._pending_open:
                if rt.alive:
                    rt.open_first_window(as_of)
            self._pending_open = []
        self.ordering.expire_seen(now)
        self._seen.expire(now, self._pending_deletes)

    def _evaluate(self, order: list[events.Event], now: float) -> None:
        if not order:
            return
        matches = self.matcher.match_batch(order)
        if not any(matches):  # no event of the batch touches a trigger (a C-level pass)
            return
        matches = matching.without_own_lifecycle(order, matches)
        by_object = self._by_object
        deferred = self.deferred
        inbox = self.metrics.inbox  # metric triggers take their events in one call per batch
        for event, touches in zip(order, matches, strict=True):
            for touch in touches:
                rt = by_object.get(id(touch.trigger))
                if rt is None or rt.trigger is not touch.trigger:
                    fed = inbox.get(id(touch.trigger))
                    if fed is not None:
                        fed.append(event)
                        continue
                    rt = self._by_id.get((touch.automation_id, touch.trigger.id))
                    if rt is None:
                        continue
                if deferred is not None:
                    deferred.touch(rt, event)
                rt.on_event(event, touch.after, touch.expect, now)
        self.metrics.take_inbox(now)

    def _finish(self, now: float) -> Step:
        """Hands over the step's firings and the records of everything it changed."""
        step = Step(firings=self._firings)
        self._firings = []
        records.write_runtimes(self._dirty_runtimes, step, self.schedule)
        self._dirty_runtimes.clear()
        records.write_composites(self._dirty_composites, step)
        self._dirty_composites.clear()
        records.write_resolutions(self._resolving.values(), step)
        self.metrics.write(step, now)
        records.write_global(
            step, self.ordering, self.clock, self._seen if self.persist_seen else None, now
        )
        if self._pending_deletes:
            written = {r.identity for r in step.upserts}
            step.deletes.extend(r for r in self._pending_deletes if r.identity not in written)
            self._pending_deletes.clear()  # (kept: the deferred buckets' restores append to it)
        return step

    # ================================================================== snapshots

    def snapshot(self) -> list[StateRecord]:
        """Every piece of current state as records (what the store should hold after a step)."""
        if self.deferred is not None:
            self.deferred.restore_some(len(self.deferred))
        out = records.snapshot(
            self.clock,
            self.ordering,
            persist_seen=self.persist_seen,
            automations=(
                (loaded.event_runtimes.values(), loaded.composites.values())
                for loaded in self._automations.values()
            ),
        )
        return out + self.metrics.snapshot()
