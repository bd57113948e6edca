"""What the engine hands back: a :class:`Step` of firings plus :class:`StateRecord` changes.

The store keeps records generically, in one table keyed by
``(automation_id, trigger_id, kind, key)`` with a JSON ``data`` column and a ``due`` column. Kinds:

* ``bucket``: one per (automation, event trigger, for_each key); ``key`` is the JSON list of the key
  values, ``due`` the window end (event time; for a reactive bucket, end + 60 s, when it is swept).
* ``child_firing``: the latest firing of one child of a compound/sequence trigger; ``trigger_id`` is
  the composite trigger, ``key`` the child trigger id.
* ``resolution``: a key of a top-level proactive trigger that fired and waits for its expected
  events to resume (``engine.resolution``); ``key`` as a bucket's;
* ``metric_state``, ``metric_samples``, ``metric_entity``: a metric trigger's groups, the samples
  of its windows and its open intervals or outcomes (``engine.metrics.records``);
* engine-wide records have ``automation_id == ""``: ``follower`` (a held event; ``key`` its id,
  ``due`` the wall time at which it becomes lost), ``clock`` (the event clock) and ``seen`` (a chunk
  of processed event ids; ``due`` when they expire).

Events and firings inside ``data`` are stored with ``domain.codec`` (Prefect's JSON, float times).

A bucket record's ``data`` is ``{"start", "end", "count"}`` plus, for a proactive bucket that has
seen an event, ``"last_event"`` (a reactive bucket never needs one: its firings' triggering event is
the event being processed). The engine hands bucket data over already encoded, as ``bytes`` of JSON
(the store writes bytes as they are), because building and serialising a dict per changed bucket
was a large part of the distinct-keys ingest profile; readers accept bytes or a decoded mapping.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import orjson

from automations.domain import codec, firings

BUCKET = "bucket"
CHILD_FIRING = "child_firing"
FOLLOWER = "follower"
CLOCK = "clock"
SEEN = "seen"
RESOLUTION = "resolution"
METRIC_STATE = "metric_state"
METRIC_SAMPLES = "metric_samples"
METRIC_ENTITY = "metric_entity"
METRIC_KINDS = frozenset({METRIC_STATE, METRIC_SAMPLES, METRIC_ENTITY})


@dataclasses.dataclass(frozen=True, slots=True)
class StateRecord:
    """One piece of engine state, as the store persists it.

    Attributes:
        automation_id: The owning automation, or ``""`` for engine-wide state.
        trigger_id: The trigger the state belongs to (``""`` for engine-wide state).
        kind: ``bucket``, ``child_firing``, ``follower``, ``clock`` or ``seen``.
        key: Distinguishes records of one kind and trigger.
        data: JSON-able content, or ``bytes`` of already encoded JSON; None in a deletion.
        due: When the record next needs attention (see the module docstring), or None.
    """

    automation_id: str
    trigger_id: str
    kind: str
    key: str
    data: Mapping[str, Any] | bytes | None = None
    due: float | None = None

    @property
    def identity(self) -> tuple[str, str, str, str]:
        """The primary key: (automation_id, trigger_id, kind, key)."""
        return (self.automation_id, self.trigger_id, self.kind, self.key)


@dataclasses.dataclass(slots=True)
class Step:
    """The outcome of one :meth:`TriggerEngine.process` or :meth:`TriggerEngine.advance` call.

    Attributes:
        firings: Top-level automation firings, in the order they happened.
        upserts: Records to insert or replace, in the same transaction as the batch.
        deletes: Records to delete (only the identity fields are meaningful). An identity is never
            in both lists.
    """

    firings: list[firings.Firing] = dataclasses.field(default_factory=list)
    upserts: list[StateRecord] = dataclasses.field(default_factory=list)
    deletes: list[StateRecord] = dataclasses.field(default_factory=list)


RecordLike = StateRecord | tuple[str, str, str, str, Any, float | None]
"""A record as the engine takes it back: a StateRecord or a 6-tuple in its field order."""


def as_record(record: RecordLike) -> StateRecord:
    """A StateRecord for a record given as a 6-tuple (returned as is otherwise)."""
    if isinstance(record, tuple):
        return StateRecord(*record)
    return record


_LAST_EVENT = b',"last_event":'


def split_bucket_data(
    data: bytes | Mapping[str, Any],
) -> tuple[float, float, int, bytes | None]:
    """A bucket record's ``(start, end, count, last event JSON or None)``.

    Encoded data as the engine writes it (``{"start":..,"end":..,"count":..,"last_event":{..}}``)
    is cut at ``"last_event"``: the event stays the bytes it was stored as (it is only decoded
    if the bucket fires), and only the three numbers are parsed. Anything else is decoded.
    """
    if isinstance(data, bytes):
        if not data.endswith(b"}}"):  # no event in it (a reactive bucket's record)
            head = orjson.loads(data)
            if "last_event" not in head:
                return float(head["start"]), float(head["end"]), int(head["count"]), None
            return split_bucket_data(head)
        cut = data.find(_LAST_EVENT)
        if cut < 0:
            return split_bucket_data(orjson.loads(data))
        last_json = data[cut + len(_LAST_EVENT) : -1]
        if not last_json.startswith(b"{"):
            return split_bucket_data(orjson.loads(data))
        head = orjson.loads(data[:cut] + b"}")
        return float(head["start"]), float(head["end"]), int(head["count"]), last_json
    last = data.get("last_event")
    return (
        float(data["start"]),
        float(data["end"]),
        int(data["count"]),
        None if last is None else codec.compact_json(last),
    )


def data_of(record: StateRecord) -> Mapping[str, Any] | None:
    """A record's data as a mapping, decoding it when it is held encoded."""
    data = record.data
    if isinstance(data, bytes):
        decoded: Mapping[str, Any] = orjson.loads(data)
        return decoded
    return data
