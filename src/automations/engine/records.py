"""Record encoding: the engine's in-memory state written as :class:`~automations.engine.state.StateRecord`.

What a step hands the store (the changed buckets and child firings, the keys of proactive
triggers waiting to resolve, the seen-id chunks, held followers and the event clock) and a full
:func:`snapshot` of the same state (metric triggers write theirs through ``metrics.records``). The record kinds and
their ``data`` are described in ``state``; reading them back is ``restore``.

Bucket data is encoded here, once, to JSON bytes; a bucket keeps its last event encoded too, and an
event that touches many triggers in one step is encoded once (``event_cache``).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable

import orjson

from automations.domain import codec
from automations.engine import state
from automations.engine.buckets import Bucket, BucketKey, TriggerRuntime
from automations.engine.clock import EventClock
from automations.engine.composite import CompositeRuntime
from automations.engine.ordering import CausalOrdering
from automations.engine.state import StateRecord, Step


def key_text(key: BucketKey) -> str:
    """A bucket key's record key: the JSON list of its values."""
    # not cached on the bucket: the cached text cost ~70 bytes per live bucket, and it is
    # only needed when a bucket is written (orjson encodes it in ~0.2 us)
    return orjson.dumps((key,) if isinstance(key, str) else key).decode()


def bucket_record(
    rt: TriggerRuntime, bucket: Bucket, cache: dict[int, bytes] | None = None
) -> StateRecord:
    """A bucket's record, its data already encoded; the bucket keeps its event encoded too.

    ``cache`` maps ``id(event)`` to the event's JSON for the events of the current step (an
    event that touches many triggers is encoded once).
    """
    last = bucket.last_event
    data: bytes
    if last is None:
        # repr() of a float is the shortest round-tripping form, which is valid JSON
        data = b'{"start":%r,"end":%r,"count":%d}' % (bucket.start, bucket.end, bucket.count)
    else:
        if not isinstance(last, bytes):
            encoded = None if cache is None else cache.get(id(last))
            if encoded is None:
                encoded = codec.event_to_json(last)
                if cache is not None:
                    cache[id(last)] = encoded
            bucket.last_event = last = encoded
        data = b'{"start":%r,"end":%r,"count":%d,"last_event":%b}' % (
            bucket.start,
            bucket.end,
            bucket.count,
            last,
        )
    return StateRecord(
        rt.automation_id,
        rt.trigger_id,
        state.BUCKET,
        key_text(bucket.key),
        data,
        rt.due(bucket),
    )


def child_firing_record(cr: CompositeRuntime, child_id: str) -> StateRecord:
    """The record of the latest firing of one child of a composite trigger."""
    return StateRecord(
        cr.automation_id,
        cr.trigger_id,
        state.CHILD_FIRING,
        child_id,
        codec.firing_to_data(cr.child_firings[child_id]),
    )


def bucket_deletes(rt: TriggerRuntime) -> list[StateRecord]:
    """Deletions of every stored bucket of a runtime (held ones, and those removed since)."""
    stored = {k for k, b in rt.buckets.items() if b.stored} | rt.removed_stored
    return [
        StateRecord(rt.automation_id, rt.trigger_id, state.BUCKET, key_text(key)) for key in stored
    ]


def child_firing_deletes(cr: CompositeRuntime) -> list[StateRecord]:
    """Deletions of every stored child firing of a composite trigger."""
    return [
        StateRecord(cr.automation_id, cr.trigger_id, state.CHILD_FIRING, child_id)
        for child_id in cr.stored
    ]


def resolution_deletes(rt: TriggerRuntime) -> list[StateRecord]:
    """Deletions of the stored ``resolution`` records of a proactive trigger's runtime."""
    resolving = rt.resolving
    if resolving is None:
        return []
    return [
        StateRecord(rt.automation_id, rt.trigger_id, state.RESOLUTION, key_text(key))
        for key in resolving.stored
    ]


def write_resolutions(runtimes: Iterable[TriggerRuntime], step: Step) -> None:
    """Adds to ``step`` the changed ``resolution`` records of top-level proactive triggers."""
    for rt in runtimes:
        resolving = rt.resolving
        if resolving is not None and resolving.dirty:
            for record in resolving.records(rt.automation_id, rt.trigger_id, key_text):
                (step.upserts if record.data is not None else step.deletes).append(record)


def follower_record(ordering: CausalOrdering, event_id: str) -> StateRecord:
    """The record of a held follower (``due``: when it becomes lost)."""
    event = ordering.held[event_id]
    return StateRecord(
        "", "", state.FOLLOWER, event_id, codec.event_to_data(event), ordering.lost_at(event)
    )


def clock_record(clock: EventClock) -> StateRecord:
    """The event clock's record."""
    return StateRecord("", "", state.CLOCK, "", clock.to_data())


class SeenChunks:
    """The persisted chunks of processed event ids: one record per step, deleted once expired.

    Attributes:
        chunks: (expires, record key) of every chunk written, oldest first.
        next_key: The key of the next chunk (keys are increasing integers as text).
    """

    def __init__(self) -> None:
        self.chunks: collections.deque[tuple[float, str]] = collections.deque()
        self.next_key = 0

    def add(self, ids: list[str], expires: float) -> StateRecord:
        """The record of a new chunk of ``ids`` expiring at ``expires``."""
        key = str(self.next_key)
        self.next_key += 1
        self.chunks.append((expires, key))
        return StateRecord("", "", state.SEEN, key, {"ids": ids, "expires": expires}, expires)

    def expire(self, now: float, deletes: list[StateRecord]) -> None:
        """Appends to ``deletes`` the records of the chunks expired by ``now``."""
        chunks = self.chunks
        while chunks and chunks[0][0] <= now:
            _, key = chunks.popleft()
            deletes.append(StateRecord("", "", state.SEEN, key))

    def restore(self, restored: Iterable[tuple[float, str]]) -> None:
        """Takes back stored chunks (expires, key); later keys continue after the largest."""
        chunks = list(self.chunks)
        for expires, key in restored:
            chunks.append((expires, key))
            try:
                self.next_key = max(self.next_key, int(key) + 1)
            except ValueError:
                pass
        self.chunks = collections.deque(sorted(chunks))


def write_runtimes(
    runtimes: Iterable[TriggerRuntime],
    step: Step,
    schedule: Callable[[TriggerRuntime, Bucket], None],
) -> None:
    """Adds to ``step`` the records of the buckets changed in ``runtimes`` and clears the changes.

    A changed bucket still alive is upserted (and marked stored); one removed is deleted if it had
    been stored. ``schedule`` is called for every written bucket whose deadline is not scheduled.
    """
    upserts = step.upserts
    event_data: dict[int, bytes] = {}
    for rt in runtimes:
        aid, tid = rt.automation_id, rt.trigger_id
        buckets = rt.buckets
        removed = rt.removed_stored
        for key in rt.dirty:
            bucket = buckets.get(key)
            if bucket is None:
                if key in removed:
                    step.deletes.append(StateRecord(aid, tid, state.BUCKET, key_text(key)))
            else:
                bucket.stored = True
                if bucket.scheduled != bucket.token:
                    schedule(rt, bucket)
                upserts.append(bucket_record(rt, bucket, event_data))
        rt.dirty.clear()
        removed.clear()


def write_composites(composites: Iterable[CompositeRuntime], step: Step) -> None:
    """Adds to ``step`` the records of the child firings changed in ``composites``."""
    for cr in composites:
        for child_id in cr.dirty:
            if child_id not in cr.child_firings:
                if child_id in cr.stored:
                    cr.stored.discard(child_id)
                    step.deletes.append(
                        StateRecord(cr.automation_id, cr.trigger_id, state.CHILD_FIRING, child_id)
                    )
            else:
                cr.stored.add(child_id)
                step.upserts.append(child_firing_record(cr, child_id))
        cr.dirty.clear()


def write_global(
    step: Step,
    ordering: CausalOrdering,
    clock: EventClock,
    seen: SeenChunks | None,
    now: float,
) -> None:
    """Adds to ``step`` the engine-wide changes: processed ids, held followers, the clock.

    Args:
        step: The step being finished.
        ordering: The causal ordering, whose changes since the last step are drained.
        clock: The event clock.
        seen: Where processed ids are persisted; None when they are not.
        now: Wall time of the step.
    """
    new_seen, held_changed, clock_changed = ordering.drain()
    if new_seen and seen is not None:
        step.upserts.append(seen.add(new_seen, now + ordering.seen_ttl))
    held = ordering.held
    for event_id in held_changed:
        if event_id in held:
            step.upserts.append(follower_record(ordering, event_id))
        else:
            step.deletes.append(StateRecord("", "", state.FOLLOWER, event_id))
    if clock_changed:
        step.upserts.append(clock_record(clock))


def snapshot(
    clock: EventClock,
    ordering: CausalOrdering,
    *,
    persist_seen: bool,
    automations: Iterable[tuple[Iterable[TriggerRuntime], Iterable[CompositeRuntime]]],
) -> list[StateRecord]:
    """Every piece of current state as records (what the store should hold after a step).

    Args:
        clock: The event clock (no record before it has a time).
        ordering: Held followers and processed ids.
        persist_seen: Whether processed ids are persisted (one record per expiry time here).
        automations: Each loaded automation's event-trigger and composite runtimes, in order.
    """
    out: list[StateRecord] = []
    if clock.clock is not None:
        out.append(clock_record(clock))
    for event_id in ordering.held:
        out.append(follower_record(ordering, event_id))
    by_expiry: dict[float, list[str]] = {}
    for event_id, expires in ordering.seen_items() if persist_seen else ():
        by_expiry.setdefault(expires, []).append(event_id)
    for index, (expires, expiring) in enumerate(sorted(by_expiry.items())):
        out.append(
            StateRecord(
                "", "", state.SEEN, f"s{index}", {"ids": expiring, "expires": expires}, expires
            )
        )
    for runtimes, composites in automations:
        for rt in runtimes:
            for bucket in rt.buckets.values():
                out.append(bucket_record(rt, bucket))
            if rt.resolving is not None:
                out.extend(rt.resolving.snapshot(rt.automation_id, rt.trigger_id, key_text))
        for cr in composites:
            for child_id in cr.child_firings:
                out.append(child_firing_record(cr, child_id))
    return out
