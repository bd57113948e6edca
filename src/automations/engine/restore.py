"""The restore path: persisted state records read back into the runtimes of loaded automations.

What a restart (or loading one automation) uses: :func:`restore_records` puts bucket and child
firing records into the trigger runtimes they belong to and schedules the buckets' deadlines;
:func:`restore_global` takes back the engine-wide records (event clock, held followers, processed
ids). The inverse, encoding, is ``records``; the record kinds are described in ``state``.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping

import orjson

from automations.domain import codec, firings
from automations.engine import records, state
from automations.engine.buckets import Bucket, BucketKey, DueEntry, TriggerRuntime
from automations.engine.clock import EventClock
from automations.engine.composite import CompositeRuntime
from automations.engine.metrics.host import MetricRecord
from automations.engine.metrics.runtime import MetricRuntime
from automations.engine.ordering import CausalOrdering
from automations.engine.state import StateRecord

Target = tuple[
    str,
    Mapping[str, TriggerRuntime],
    Mapping[str, CompositeRuntime],
    set[str],
    Mapping[str, MetricRuntime],
]
"""Where one automation's records go: its id, its event-trigger runtimes and composite runtimes by
trigger id, the ids of triggers that kept their in-memory state (their records are skipped), and
its metric-trigger runtimes by trigger id."""

_RECENT_KEYS = 65_536
"""Distinct one-label keys remembered while reading, to share one string between triggers."""


def restore_records(
    resolve: Callable[[str], Target | None],
    items: Iterable[state.RecordLike],
    heap: list[DueEntry],
    deletes: list[StateRecord],
    metric_records: list[MetricRecord] | None = None,
) -> int:
    """Restores bucket, child-firing and resolution records into their runtimes, in one pass.

    Args:
        resolve: Where the records of an automation id go; None to ignore them.
        items: The records (StateRecords, or 6-tuples in their field order, ``data`` possibly
            encoded JSON), read once: a stream straight from a database cursor will do. Records
            of one automation are best kept together (``resolve`` is called once per run).
        heap: The deadline heap, which gets an entry per restored bucket.
        deletes: Gets the records of triggers that no longer exist, to be deleted.
        metric_records: Gets the records of metric triggers, with their runtime (for
            ``MetricEngine.restore``); None drops them.

    Returns:
        The number of records read.
    """
    # The restart path: one pass over the (possibly streamed) records, no per-record
    # dataclass, the bucket's event kept as the stored bytes (see state.split_bucket_data),
    # one heapify instead of a push per bucket, a reactive bucket's sweep time taken from the
    # row, a one-label key read from its text without a JSON parse. Measured with 100k keys
    # x 2 automations (200k records, in-process EngineBackend.start()): 3.15 s -> 1.5 s.
    child_records: list[tuple[CompositeRuntime, firings.Firing]] = []
    entries: list[DueEntry] = []
    loads = orjson.loads
    current: str | None = None
    target: Target | None = None
    read = 0
    # Keys recently read, to share one string between the buckets of several triggers with
    # the same key (after ingest they share the event's string; rows of one event are
    # written in one step, so they are near each other in storage order). Bounded.
    recent: dict[str, str] = {}
    for record in items:
        read += 1
        if isinstance(record, tuple):
            record_aid, trigger_id, kind, key_text, data, due = record
        else:
            record_aid, trigger_id, kind, key_text, data, due = (
                record.automation_id,
                record.trigger_id,
                record.kind,
                record.key,
                record.data,
                record.due,
            )
        if data is None:
            continue
        if record_aid != current:
            current = record_aid
            target = resolve(record_aid)
        if target is None:
            continue
        aid, runtimes, composites, kept, metric_runtimes = target
        if kind == state.BUCKET:
            rt = runtimes.get(trigger_id)
            if rt is None:
                deletes.append(StateRecord(aid, trigger_id, kind, key_text))
                continue
            if trigger_id in kept:
                continue
            start, end, count, last = state.split_bucket_data(data)
            key: BucketKey | None = None
            if len(rt.label_names) == 1 and key_text[:2] == '["' and key_text[-2:] == '"]':
                # orjson escapes only the quote, the backslash and control characters
                inner = key_text[2:-2]
                if '"' not in inner and "\\" not in inner:
                    key = recent.get(inner)
                    if key is None:
                        if len(recent) >= _RECENT_KEYS:
                            recent.clear()
                        key = recent[inner] = inner
            if key is None:
                key = rt.key_from_values(loads(key_text))
            reactive = rt.reactive
            bucket = Bucket(key, start, end, count, None if reactive else last, rt)
            bucket.stored = True
            rt.buckets[key] = bucket
            bucket.scheduled = token = bucket.token
            if not reactive or due is None:
                due = rt.due(bucket)  # a proactive due is bucket.end itself: no new float
            entries.append((due, bucket, token))
        elif kind == state.CHILD_FIRING:
            cr = composites.get(trigger_id)
            if cr is None:
                deletes.append(StateRecord(aid, trigger_id, kind, key_text))
                continue
            if trigger_id in kept:
                continue
            child_data = loads(data) if isinstance(data, bytes) else data
            child_records.append((cr, codec.firing_from_data(child_data)))
        elif kind in state.METRIC_KINDS:
            mr = metric_runtimes.get(trigger_id)
            if mr is None:
                deletes.append(StateRecord(aid, trigger_id, kind, key_text))
            elif trigger_id not in kept and metric_records is not None:
                metric_records.append((mr, kind, key_text, data, due))
        elif kind == state.RESOLUTION:
            rt = runtimes.get(trigger_id)
            if rt is None or rt.resolving is None:
                deletes.append(StateRecord(aid, trigger_id, kind, key_text))
            elif trigger_id not in kept:
                rt.resolving.restore(rt.key_from_values(loads(key_text)), data)
    if len(entries) > 64 and len(entries) * 4 > len(heap):
        heap.extend(entries)
        heapq.heapify(heap)
    else:
        for entry in entries:
            heapq.heappush(heap, entry)
    child_records.sort(key=lambda item: item[1].triggered)
    for cr, firing in child_records:
        cr.child_firings[firing.trigger_id] = firing
        cr.stored.add(firing.trigger_id)
    return read


def restore_global(
    items: Iterable[state.RecordLike],
    clock: EventClock,
    ordering: CausalOrdering,
    seen: records.SeenChunks,
) -> None:
    """Restores engine-wide state (records with ``automation_id == ""``).

    Args:
        items: The engine-wide records (any order).
        clock: Takes the stored event clock.
        ordering: Takes the held followers and the processed ids.
        seen: Takes the stored chunks of processed ids (to delete them once expired).
    """
    chunks: list[tuple[float, str]] = []
    for item in items:
        record = state.as_record(item)
        data = state.data_of(record)
        if data is None:
            continue
        if record.kind == state.CLOCK:
            restored = EventClock.from_data(dict(data))
            clock.clock = restored.clock
            clock.updated = restored.updated
        elif record.kind == state.FOLLOWER:
            ordering.restore_follower(codec.event_from_data(data))
        elif record.kind == state.SEEN:
            expires = float(data["expires"])
            ordering.restore_seen(data["ids"], expires)
            chunks.append((expires, record.key))
    seen.restore(chunks)
