"""A metric trigger's state as :class:`~automations.engine.state.StateRecord` s, and back.

Three kinds, all under the automation and the metric trigger's id:

* ``metric_state``: one per group that is Triggered or has a pending change; ``key`` is the JSON
  list of the group's ``for_each`` values (``[]`` without ``for_each``), ``data``
  ``{"triggered": bool, "since": float or null}``. A group back to Resolved with nothing pending
  has no record.
* ``metric_samples``: the samples a step added, for all groups of the trigger: ``key`` is a
  sequence number, ``data`` ``{"s": [[[group values...], [times...], [values...] or null], ...]}``
  (one entry per group; null values: all 1, a count), ``due`` the time the last of them leaves
  the window, when the chunk is deleted. Append-only: a step writes one chunk per trigger it fed,
  never rewrites a window.
* ``metric_entity``: an open interval (``between``: ``{"t": start}``) or an outcome
  (``outcome``: ``{"t": sample time, "ok": bool}``) of one entity; ``key`` the JSON list
  ``[entity, group values...]``. Written when it changes, deleted when it closes or leaves.

After a restart the groups are rebuilt from these (samples sorted into their windows), so a
breach in progress keeps its start, a Triggered group stays Triggered (no second Triggered firing)
and its Resolved still comes.
"""

from __future__ import annotations

import heapq
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


def _entity_key(rt: MetricRuntime, group: Group, entity: EntityKey) -> str:
    text = rt.entity_keys.unpack(entity)
    return orjson.dumps([text, *rt.key_values(group.key)]).decode()


def _record(
    rt: MetricRuntime, kind: str, key: str, data: Any = None, due: float | None = None
) -> StateRecord:
    return StateRecord(rt.automation_id, rt.trigger_id, kind, key, data, due)


def _state_data(group: Group) -> bytes:
    return orjson.dumps({"triggered": group.triggered, "since": group.since})


def _entity_data(group: Group, entity: EntityKey) -> dict[str, Any] | None:
    if group.open is not None and entity in group.open:
        return {"t": group.open[entity]}
    if group.entities is not None and entity in group.entities:
        return {"t": group.entities[entity], "ok": not (group.failed and entity in group.failed)}
    return None


Entry = list[Any]
"""One group's new samples in a chunk: ``[group values, times, values or None]``."""


def write_group(rt: MetricRuntime, group: Group, step: Step) -> Entry | None:
    """Adds a changed group's state and entity records to ``step``; returns its new samples."""
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
    if group.entity_dirty:
        for entity, existed in group.entity_dirty.items():
            data = _entity_data(group, entity) if group.alive else None
            if data is not None:
                key = _entity_key(rt, group, entity)
                step.upserts.append(_record(rt, state.METRIC_ENTITY, key, data))
            elif existed:
                step.deletes.append(
                    _record(rt, state.METRIC_ENTITY, _entity_key(rt, group, entity))
                )
        group.entity_dirty = None
    times, values = group.unsaved_times, group.unsaved_values
    if times is None:
        return None
    group.unsaved_times = group.unsaved_values = None
    return [
        list(rt.key_values(group.key)),
        times.tolist(),
        None if values is None else values.tolist(),
    ]


def write_chunk(rt: MetricRuntime, entries: list[Entry], step: Step) -> None:
    """Adds one chunk of new samples of ``rt`` to ``step``."""
    if not entries:
        return
    seq = rt.next_seq
    rt.next_seq += 1
    expires = max(max(entry[1]) for entry in entries) + rt.range
    step.upserts.append(
        _record(rt, state.METRIC_SAMPLES, str(seq), orjson.dumps({"s": entries}), expires)
    )
    heapq.heappush(rt.chunks, (expires, seq))


def expire_chunks(rt: MetricRuntime, as_of: float, step: Step) -> None:
    """Deletes the chunks whose samples have all left the window by ``as_of``."""
    chunks = rt.chunks
    while chunks and chunks[0][0] <= as_of:
        _, seq = heapq.heappop(chunks)
        step.deletes.append(_record(rt, state.METRIC_SAMPLES, str(seq)))


def all_deletes(rt: MetricRuntime) -> list[StateRecord]:
    """Deletions of every record a metric trigger may have stored (its trigger was removed)."""
    out: list[StateRecord] = []
    for group in rt.groups.values():
        if group.stored:
            out.append(_record(rt, state.METRIC_STATE, key_text(rt, group)))
        for entity in (*(group.open or ()), *(group.entities or ()), *(group.entity_dirty or ())):
            out.append(_record(rt, state.METRIC_ENTITY, _entity_key(rt, group, entity)))
    out.extend(_record(rt, state.METRIC_SAMPLES, str(seq)) for _, seq in rt.chunks)
    unique = {record.identity: record for record in out}
    return list(unique.values())


def snapshot(rt: MetricRuntime) -> list[StateRecord]:
    """Every record of a metric trigger's current state (its samples in one chunk)."""
    out: list[StateRecord] = []
    entries: list[Entry] = []
    is_outcome = isinstance(rt.value, metric_queries.Outcome)
    for group in rt.groups.values():
        if group.triggered or group.since is not None:
            out.append(_record(rt, state.METRIC_STATE, key_text(rt, group), _state_data(group)))
        for entity in (*(group.open or ()), *(group.entities or ())):
            data = _entity_data(group, entity)
            out.append(_record(rt, state.METRIC_ENTITY, _entity_key(rt, group, entity), data))
        samples = list(group.window.samples())
        if samples and not is_outcome:
            entries.append(
                [
                    list(rt.key_values(group.key)),
                    [at for at, _, _ in samples],
                    None if group.window.values is None else [v for _, v, _ in samples],
                ]
            )
    if entries:
        expires = max(max(entry[1]) for entry in entries) + rt.range
        out.append(_record(rt, state.METRIC_SAMPLES, "0", {"s": entries}, expires))
    return out


class Restoring:
    """Collects a metric trigger's records, then rebuilds its groups from them at once."""

    def __init__(self, rt: MetricRuntime) -> None:
        self.rt = rt
        self._samples: dict[Any, list[tuple[float, float, EntityKey | None]]] = {}

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
        elif kind == state.METRIC_ENTITY:
            text, *values = orjson.loads(key)
            entity = rt.entity_keys.pack(text)
            group_key = rt.key_from_values(values)
            group = rt.group(group_key)
            at = float(data["t"])
            if isinstance(rt.value, metric_queries.Outcome):
                ok = bool(data.get("ok", True))
                if group.entities is None:
                    group.entities = {}
                group.entities[entity] = at
                if not ok:
                    group.failed = group.failed or set()
                    group.failed.add(entity)
                self._samples.setdefault(group_key, []).append((at, 1.0 if ok else 0.0, entity))
            else:
                if group.open is None:
                    group.open = {}
                group.open[entity] = at
                group.open_floor = min(group.open_floor, at)

    def finish(self) -> Iterable[Group]:
        """Fills the windows (in time order); returns every restored group."""
        rt = self.rt
        for group_key, samples in self._samples.items():
            group = rt.group(group_key)
            samples.sort(key=lambda s: s[0])
            for at, value, entity in samples:
                group.window.add(at, value, entity)
        self._samples = {}
        return list(rt.groups.values())
