"""A metric trigger's state as :class:`~automations.engine.state.StateRecord` s, and back.

Two kinds, all under the automation and the metric trigger's id:

* ``metric_state``: one per group that is Triggered or has a pending change; ``key`` is the JSON
  list of the group's ``for_each`` values (``[]`` without ``for_each``), ``data``
  ``{"triggered": bool, "since": float or null}``. A group back to Resolved with nothing pending
  has no record.
* ``metric_samples``: what a step changed, for all groups of the trigger: ``key`` is a sequence
  number, ``data`` ``{"s": [[[group values...], [times...], [values...] or null], ...], "e":
  [[entity, [group values...], time or null, ok], ...]}``. ``s``: the samples added (one entry
  per group; null values: all 1, a count). ``e``: the entities whose open interval (``between``:
  its start) or outcome (``outcome``: its sample's time and whether it is a success) changed, in
  the state the step left them; a null time: the interval closed. ``due`` is when all of it is
  stale (samples out of the window, intervals past the horizon, the closed intervals' starts
  with them): the chunk is then deleted. Append-only: a step writes one chunk per trigger it
  changed, never rewrites one, so a run in flight costs no row of its own.

On restart the chunks are replayed in sequence order (the last word on an entity wins), and the
groups rebuilt (samples sorted into their windows), so a breach in progress keeps its start, a
Triggered group stays Triggered (no second Triggered firing) and its Resolved still comes. An
entity whose last word was deleted with its chunk is stale by then: the first evaluation drops
it. ``metric_entity`` records (one row per entity, written before the chunks carried entities)
are read, and replaced by a chunk at the next write.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from automations.domain import metric_queries
from automations.engine import state
from automations.engine.metrics.entities import EntityKey
from automations.engine.metrics.groups import Group
from automations.engine.metrics.runtime import MetricRuntime
from automations.engine.state import StateRecord, Step


def key_text(rt: MetricRuntime, group: Group) -> str:
    """A group's record key: the JSON list of its ``for_each`` values."""
    return orjson.dumps(rt.key_values(group.key)).decode()


def _record(
    rt: MetricRuntime, kind: str, key: str, data: Any = None, due: float | None = None
) -> StateRecord:
    return StateRecord(rt.automation_id, rt.trigger_id, kind, key, data, due)


def _state_data(group: Group) -> bytes:
    return orjson.dumps({"triggered": group.triggered, "since": group.since})


def _entity_op(
    rt: MetricRuntime, group: Group, entity: EntityKey
) -> tuple[list[Any], float] | None:
    """The chunk entry for an entity as the step leaves it, and until when it matters."""
    if group.open is not None and entity in group.open:
        start = group.open[entity]
        return [rt.entity_keys.unpack(entity), _group_values(rt, group), start], start + rt.horizon
    if group.entities is not None and entity in group.entities:
        at = group.entities[entity]
        ok = not (group.failed and entity in group.failed)
        return [rt.entity_keys.unpack(entity), _group_values(rt, group), at, ok], at + rt.range
    return None


def _group_values(rt: MetricRuntime, group: Group) -> list[Any]:
    return list(rt.key_values(group.key))


class Chunk:
    """What one step changed in one metric trigger, written as one ``metric_samples`` record."""

    __slots__ = ("samples", "entities", "due")

    def __init__(self) -> None:
        self.samples: list[list[Any]] = []
        self.entities: list[list[Any]] = []
        self.due = -math.inf


def write_group(rt: MetricRuntime, group: Group, step: Step, chunk: Chunk) -> None:
    """Adds a changed group's state record to ``step``, its new samples and entities to ``chunk``."""
    if group.state_dirty:
        group.state_dirty = False
        if group.alive and (group.triggered or group.since is not None):
            step.upserts.append(
                _record(rt, state.METRIC_STATE, key_text(rt, group), _state_data(group))
            )
            group.stored = True
        elif group.stored:
            step.deletes.append(_record(rt, state.METRIC_STATE, key_text(rt, group)))
            group.stored = False
    dirty = group.entity_dirty
    if dirty:
        group.entity_dirty = None
        for entity, stored_until in dirty.items():
            op = _entity_op(rt, group, entity) if group.alive else None
            if op is not None:
                entry, until = op
            elif stored_until is not None:  # gone: the older word on it stays denied
                entry = [rt.entity_keys.unpack(entity), _group_values(rt, group), None]
                until = stored_until
            else:
                continue
            chunk.entities.append(entry)
            if until > chunk.due:
                chunk.due = until
    times, values = group.unsaved_times, group.unsaved_values
    if times is None:
        return
    group.unsaved_times = group.unsaved_values = None
    chunk.samples.append(
        [_group_values(rt, group), times.tolist(), None if values is None else values.tolist()]
    )
    last = max(times) + rt.range
    if last > chunk.due:
        chunk.due = last


def write_chunk(rt: MetricRuntime, chunk: Chunk, step: Step) -> None:
    """Adds ``chunk`` (if it holds anything) to ``step``.

    Also deletes the trigger's ``metric_entity`` rows of an older release, their entities being
    in this chunk (they were marked when read back).
    """
    if chunk.samples or chunk.entities:
        seq = rt.next_seq
        rt.next_seq += 1
        data: dict[str, Any] = {"s": chunk.samples}
        if chunk.entities:
            data["e"] = chunk.entities
        step.upserts.append(
            _record(rt, state.METRIC_SAMPLES, str(seq), orjson.dumps(data), chunk.due)
        )
        heapq.heappush(rt.chunks, (chunk.due, seq))
    if rt.legacy_entities:
        step.deletes.extend(_record(rt, state.METRIC_ENTITY, k) for k in rt.legacy_entities)
        rt.legacy_entities = []


def expire_chunks(rt: MetricRuntime, as_of: float, step: Step) -> None:
    """Deletes the chunks whose samples have all left the window by ``as_of``."""
    chunks = rt.chunks
    while chunks and chunks[0][0] <= as_of:
        _, seq = heapq.heappop(chunks)
        step.deletes.append(_record(rt, state.METRIC_SAMPLES, str(seq)))


def all_deletes(rt: MetricRuntime) -> list[StateRecord]:
    """Deletions of every record a metric trigger may have stored (its trigger was removed)."""
    out = [
        _record(rt, state.METRIC_STATE, key_text(rt, group))
        for group in rt.groups.values()
        if group.stored
    ]
    out.extend(_record(rt, state.METRIC_ENTITY, key) for key in rt.legacy_entities)
    out.extend(_record(rt, state.METRIC_SAMPLES, str(seq)) for _, seq in rt.chunks)
    return out


def snapshot(rt: MetricRuntime) -> list[StateRecord]:
    """Every record of a metric trigger's current state (samples and entities in one chunk)."""
    out: list[StateRecord] = []
    chunk = Chunk()
    is_outcome = isinstance(rt.value, metric_queries.Outcome)
    for group in rt.groups.values():
        if group.triggered or group.since is not None:
            out.append(_record(rt, state.METRIC_STATE, key_text(rt, group), _state_data(group)))
        for entity in (*(group.open or ()), *(group.entities or ())):
            op = _entity_op(rt, group, entity)
            if op is not None:
                chunk.entities.append(op[0])
                chunk.due = max(chunk.due, op[1])
        samples = list(group.window.samples())
        if samples and not is_outcome:
            chunk.samples.append(
                [
                    _group_values(rt, group),
                    [at for at, _, _ in samples],
                    None if group.window.values is None else [v for _, v, _ in samples],
                ]
            )
            chunk.due = max(chunk.due, max(at for at, _, _ in samples) + rt.range)
    if chunk.samples or chunk.entities:
        data: dict[str, Any] = {"s": chunk.samples}
        if chunk.entities:
            data["e"] = chunk.entities
        out.append(_record(rt, state.METRIC_SAMPLES, "0", data, chunk.due))
    return out


class Restoring:
    """Collects a metric trigger's records, then rebuilds its groups from them at once."""

    def __init__(self, rt: MetricRuntime) -> None:
        self.rt = rt
        self._samples: dict[Any, list[tuple[float, float, EntityKey | None]]] = {}
        self._entities: list[tuple[int, list[Any]]] = []  # (chunk seq, entry), replayed in order
        self._legacy: list[list[Any]] = []  # metric_entity records, as chunk entries

    def add(self, kind: str, key: str, data: Mapping[str, Any], due: float | None) -> None:
        """Takes one record (``data`` decoded)."""
        rt = self.rt
        if kind == state.METRIC_STATE:
            group = rt.group(rt.key_from_values(orjson.loads(key)))
            group.triggered = bool(data.get("triggered"))
            since = data.get("since")
            group.since = None if since is None else float(since)
            group.stored = True
        elif kind == state.METRIC_SAMPLES:
            seq = int(key)
            rt.next_seq = max(rt.next_seq, seq + 1)
            entries = data.get("s") or ()
            if due is None:
                due = max((max(e[1], default=0.0) for e in entries), default=0.0) + rt.range
            heapq.heappush(rt.chunks, (float(due), seq))
            for group_values, times, values in entries:
                group_key = rt.key_from_values([str(v) for v in group_values])
                held = self._samples.setdefault(group_key, [])
                if values is None:
                    held.extend((float(at), 1.0, None) for at in times)
                else:
                    held.extend(
                        (float(at), float(v), None) for at, v in zip(times, values, strict=True)
                    )
            self._entities.extend((seq, entry) for entry in data.get("e") or ())
        elif kind == state.METRIC_ENTITY:
            text, *values = orjson.loads(key)
            rt.legacy_entities.append(key)
            self._legacy.append([text, values, data["t"], data.get("ok", True)])

    def _apply(self, entry: list[Any], rewrite: bool) -> None:
        rt = self.rt
        text, group_values, at = entry[0], entry[1], entry[2]
        entity = rt.entity_keys.pack(text)
        group = rt.group(rt.key_from_values([str(v) for v in group_values]))
        if rewrite:  # a metric_entity record: into the next chunk
            group.mark_entity(entity, None)
        if isinstance(rt.value, metric_queries.Outcome):
            if group.entities is None:
                group.entities = {}
            if at is None:
                group.entities.pop(entity, None)
            else:
                group.entities[entity] = float(at)
            if group.failed is not None:
                group.failed.discard(entity)
            if at is not None and not (len(entry) > 3 and entry[3]):
                group.failed = group.failed or set()
                group.failed.add(entity)
        else:
            if group.open is None:
                group.open = {}
            if at is None:
                group.open.pop(entity, None)
            else:
                group.open[entity] = float(at)

    def finish(self) -> Iterable[Group]:
        """Replays the entities, fills the windows (in time order); returns every group."""
        rt = self.rt
        for entry in self._legacy:
            self._apply(entry, rewrite=True)
        self._entities.sort(key=lambda item: item[0])  # stable: a chunk's entries in order
        for _, entry in self._entities:
            self._apply(entry, rewrite=False)
        self._legacy, self._entities = [], []
        for group in rt.groups.values():
            if group.open:
                group.open_floor = min(group.open.values())
            if group.entities:  # outcome samples live with their entities
                held = self._samples.setdefault(group.key, [])
                failed = group.failed or set()
                held.extend(
                    (at, 0.0 if entity in failed else 1.0, entity)
                    for entity, at in group.entities.items()
                )
        for group_key, samples in self._samples.items():
            group = rt.group(group_key)
            samples.sort(key=lambda s: s[0])
            for at, value, entity in samples:
                group.window.add(at, value, entity)
        self._samples = {}
        return list(rt.groups.values())
