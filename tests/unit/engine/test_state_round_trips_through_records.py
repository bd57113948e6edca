"""Restarting from persisted records continues exactly like an uninterrupted engine."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from automations.domain import codec
from automations.engine import state
from automations.engine.state import StateRecord
from automations.engine.trigger_engine import TriggerEngine
from tests.unit.engine.helpers import T0, Store, automation, engine, event, fired, run

PROACTIVE_AFTER = {
    "type": "event",
    "posture": "Proactive",
    "after": ["run.started"],
    "expect": ["run.finished"],
    "for_each": ["prefect.resource.id"],
    "within": 100,
}
PROACTIVE_NO_AFTER = {"type": "event", "posture": "Proactive", "expect": ["ping"], "within": 30}
REACTIVE = {
    "type": "event",
    "posture": "Reactive",
    "expect": ["job.failed"],
    "for_each": ["prefect.resource.id"],
    "threshold": 3,
    "within": 60,
}
SEQUENCE = {
    "type": "sequence",
    "within": 300,
    "triggers": [
        {"type": "event", "posture": "Reactive", "expect": ["a"], "within": 0},
        {"type": "event", "posture": "Reactive", "expect": ["b"], "within": 0},
        {"type": "event", "posture": "Reactive", "expect": ["c"], "within": 0},
    ],
}

TIMELINE = [
    (1.0, [event("s1", "run.started", 1, "run.1"), event("f1", "job.failed", 1, "job.1")]),
    (5.0, [event("s2", "run.started", 5, "run.2"), event("a1", "a", 5)]),
    (10.0, [event("f2", "job.failed", 10, "job.1"), event("b1", "b", 10)]),
    # a follower whose leader arrives after the restart
    (12.0, [event("fin1", "run.finished", 12, "run.1", follows="lead")]),
    (20.0, [event("f3", "job.failed", 20, "job.1"), event("c1", "c", 20)]),
    (30.0, [event("lead", "other", 30, "run.1"), event("f1", "job.failed", 30, "job.1")]),
    (40.0, [event("fin2", "run.finished", 40, "run.2")]),
    (150.0, [event("s3", "run.started", 150, "run.3")]),
]
TRIGGERS: dict[str, dict[str, Any]] = {
    "pa": PROACTIVE_AFTER,
    "pn": PROACTIVE_NO_AFTER,
    "re": REACTIVE,
    "sq": SEQUENCE,
}


def _load_all(eng: TriggerEngine, store: Store | None = None, now: float = T0) -> None:
    for aid, trigger in TRIGGERS.items():
        records = store.records_of(aid) if store is not None else ()
        eng.load_automation(automation(trigger, aid), records, now=now)


def _uninterrupted(until: float) -> list[Any]:
    eng = engine()
    _load_all(eng)
    return run(eng, TIMELINE, until)


@pytest.mark.parametrize("split", [3.0, 11.0, 25.0, 35.0])
def test_restarting_from_the_stored_records_gives_the_same_firings(split: float) -> None:
    expected = _uninterrupted(400)
    store = Store()
    first = engine()
    _load_all(first)
    before = [item for item in TIMELINE if item[0] <= split]
    after = [item for item in TIMELINE if item[0] > split]
    got = run(first, before, split, store)
    second = engine()
    second.restore_global(store.global_records())
    _load_all(second, store, now=T0 + split)
    got += run(second, after, 400, store, start=split)
    assert got == expected
    assert expected  # the timeline does fire


def test_the_step_records_equal_a_full_snapshot() -> None:
    store = Store()
    eng = engine()
    _load_all(eng)
    store.apply(eng.advance(T0))
    run(eng, TIMELINE[:5], 21, store)

    def comparable(records: list[StateRecord]) -> set[tuple[Any, ...]]:
        return {r.identity[:3] + (r.key if r.kind != "seen" else "",) for r in records}

    buckets_and_more = [r for r in store.rows.values() if r.kind != "seen"]
    snapshot = [r for r in eng.snapshot() if r.kind != "seen"]
    assert comparable(buckets_and_more) == comparable(snapshot)
    by_identity = {r.identity: r for r in snapshot}
    for record in buckets_and_more:
        assert by_identity[record.identity].data == record.data


def test_a_deadline_that_passed_while_down_fires_once_on_the_first_advance() -> None:
    store = Store()
    first = engine()
    first.load_automation(automation(PROACTIVE_AFTER, "pa"), now=T0)
    store.apply(first.process([event("s1", "run.started", 1, "run.1")], T0 + 1))
    # down from 2 s to 1000 s: the window [1, 101) ended meanwhile
    second = engine()
    second.restore_global(store.global_records())
    second.load_automation(automation(PROACTIVE_AFTER, "pa"), store.records_of("pa"), now=T0 + 1000)
    assert second.next_due() == T0 + 101
    step = store.apply(second.advance(T0 + 1000))
    assert fired(step) == [(1000.0, "s1", {"prefect.resource.id": "run.1"})]
    assert fired(second.advance(T0 + 2000)) == []
    assert [r for r in store.rows.values() if r.kind == "bucket"] == []


def test_windows_missed_while_down_fire_once_then_restart_from_now() -> None:
    store = Store()
    first = engine()
    store.apply(first.advance(T0))
    first.load_automation(automation(PROACTIVE_NO_AFTER, "pn"), now=T0)
    store.apply(first.advance(T0 + 30))
    second = engine()
    second.restore_global(store.global_records())
    second.load_automation(
        automation(PROACTIVE_NO_AFTER, "pn"), store.records_of("pn"), now=T0 + 95
    )
    assert fired(second.advance(T0 + 95)) == [(95.0, None, {})]
    assert second.next_due() == T0 + 125


def test_records_are_json_serialisable() -> None:
    import orjson

    store = Store()
    eng = engine()
    _load_all(eng)
    run(eng, TIMELINE, 400, store)
    for record in eng.snapshot() + list(store.rows.values()):
        if isinstance(record.data, bytes):  # already encoded (bucket records)
            assert isinstance(orjson.loads(record.data), dict)
        else:
            assert orjson.loads(orjson.dumps(record.data)) == record.data


@pytest.mark.parametrize("encoded", [False, True])
def test_records_in_the_earlier_format_still_restore(encoded: bool) -> None:
    """Rows written before buckets were lean: a dict with ``last_event`` (also on reactive ones)."""
    started = event("s1", "run.started", 1, "run.1", owner="ops")
    legacy: dict[str, Any] = {
        "start": T0 + 1,
        "end": T0 + 101,
        "count": 0,
        "last_event": codec.event_to_data(started),
    }
    reactive: dict[str, Any] = {
        "start": T0 - 899,
        "end": T0 + 61,
        "count": 1,
        "last_event": codec.event_to_data(event("f1", "job.failed", 1, "job.1")),
    }

    def as_stored(data: dict[str, Any]) -> Any:
        return orjson.dumps(data) if encoded else data

    eng = engine()
    eng.load_automation(
        automation(PROACTIVE_AFTER, "pa"),
        [
            (
                "pa",
                automation(PROACTIVE_AFTER).trigger.id,
                "bucket",
                '["run.1"]',
                as_stored(legacy),
                None,
            )
        ],
        now=T0 + 2,
    )
    eng.load_automation(
        automation(REACTIVE, "re"),
        [
            StateRecord(
                "re", automation(REACTIVE).trigger.id, "bucket", '["job.1"]', as_stored(reactive)
            )
        ],
        now=T0 + 2,
    )
    step = eng.process(
        [event("f2", "job.failed", 3, "job.1"), event("f3", "job.failed", 4, "job.1")], T0 + 4
    )
    assert fired(step) == [(4.0, "f3", {"prefect.resource.id": "job.1"})]
    step = eng.advance(T0 + 200)
    assert fired(step) == [(200.0, "s1", {"prefect.resource.id": "run.1"})]
    assert step.firings[0].triggering_event == started


def test_bucket_data_is_split_without_decoding_the_event() -> None:
    started = event("s1", "run.started", 1, "run.1")
    encoded = codec.event_to_json(started)
    data = b'{"start":1.5,"end":2.5,"count":-1,"last_event":%b}' % encoded
    assert state.split_bucket_data(data) == (1.5, 2.5, -1, encoded)
    assert state.split_bucket_data(b'{"start":1.5,"end":2.5,"count":3}') == (1.5, 2.5, 3, None)
    assert state.split_bucket_data(b'{"start":1,"end":2,"count":0,"last_event":null}') == (
        1.0,
        2.0,
        0,
        None,
    )
    reordered = b'{"last_event":%b,"count":0,"end":2.5,"start":1.5}' % encoded
    assert state.split_bucket_data(reordered) == (1.5, 2.5, 0, encoded)


def test_a_reactive_bucket_record_carries_no_event() -> None:
    eng = engine()
    eng.load_automation(automation(REACTIVE, "re"), now=T0)
    step = eng.process([event("f1", "job.failed", 1, "job.1")], T0 + 1)
    (record,) = [r for r in step.upserts if r.kind == "bucket"]
    assert isinstance(record.data, bytes)
    assert "last_event" not in orjson.loads(record.data)


@pytest.mark.parametrize("resource", ['job "1"', "job\\1", "jöb\n1", "job.1", ""])
@pytest.mark.parametrize("labels", [["prefect.resource.id"], ["prefect.resource.id", "owner"]])
def test_bucket_keys_round_trip_whatever_their_characters(resource: str, labels: list[str]) -> None:
    trigger = {**PROACTIVE_AFTER, "for_each": labels}
    store = Store()
    first = engine()
    first.load_automation(automation(trigger, "pa"), now=T0)
    store.apply(first.process([event("s1", "run.started", 1, resource, owner="o\\")], T0 + 1))
    second = engine()
    second.load_automation(automation(trigger, "pa"), store.records_of("pa"), now=T0 + 2)
    step = store.apply(second.advance(T0 + 200))
    expected = {"prefect.resource.id": resource, **({"owner": "o\\"} if len(labels) > 1 else {})}
    assert fired(step) == [(200.0, "s1", expected)]
    assert [r for r in store.rows.values() if r.kind == "bucket"] == []
