"""A partition taken over lazily: its ``for_each`` buckets restored on touch, when due, or later.

Each test builds a partition's records with one engine, takes the partition over twice from the
same records (eagerly, as before, and lazily), and checks that the lazy one does exactly what the
eager one does: same firings, same records written, same state afterwards.
"""

from __future__ import annotations

import itertools

from automations.cluster import partitioned
from automations.domain import automations, events
from automations.engine import deferred
from automations.engine.python_matcher import PythonMatcher
from automations.engine.state import StateRecord, Step
from tests.unit.engine.helpers import T0, automation, event

COUNT_THREE = {
    "type": "event",
    "posture": "Reactive",
    "expect": ["x"],
    "for_each": ["prefect.resource.id"],
    "threshold": 3,
    "within": 3600,
}
ABSENCE = {
    "type": "event",
    "posture": "Proactive",
    "after": ["start"],
    "expect": ["done"],
    "for_each": ["prefect.resource.id"],
    "threshold": 1,
    "within": 10,
}

Rows = dict[tuple[str, str, str, str], StateRecord]


def replica(*automations_: automations.Automation) -> partitioned.PartitionedEngine:
    counter = itertools.count(1)
    engine = partitioned.PartitionedEngine(1, PythonMatcher(), new_id=lambda: f"f{next(counter)}")
    for a in automations_:
        engine.load_automation(a, now=T0)
    return engine


def apply(rows: Rows, outcomes: list[partitioned.Outcome]) -> list[tuple[str | None, str]]:
    """Stores the outcomes' records; returns their firings as (triggering event, key)."""
    fired: list[tuple[str | None, str]] = []
    for outcome in outcomes:
        step: Step = outcome.step
        for record in step.deletes:
            rows.pop(record.identity, None)
        for record in step.upserts:
            rows[record.identity] = record
        fired.extend(
            (f.triggering_event_id, f.triggering_labels["prefect.resource.id"])
            for f in step.firings
        )
    return fired


def records_before_the_failure(*automations_: automations.Automation) -> Rows:
    """Partition 0's records after 200 keys each saw two ``x`` events and 3 windows opened.

    Windows of w.0 and w.1 end at T0 + 15 and T0 + 16; the one of w.2 ends at T0 + 100.
    """
    first = replica(*automations_)
    first.add_partition(0, now=T0)
    rows: Rows = {}
    evs = [event(f"e{k}-{n}", "x", 1 + n, resource=f"k.{k}") for n in range(2) for k in range(200)]
    apply(rows, first.process_raw(0, evs, T0 + 2))
    starts = [event(f"s{k}", "start", 5 + k, resource=f"w.{k}") for k in range(2)]
    starts.append(event("s2", "start", 90, resource="w.2"))
    apply(rows, first.process_raw(0, starts, T0 + 5))
    return rows


def state(engine: partitioned.PartitionedEngine) -> list[StateRecord]:
    """Partition 0's whole state as records, in identity order (restores what waits)."""
    return sorted(engine.engines[0].snapshot(), key=lambda r: r.identity)


def take_over(
    rows: Rows, *automations_: automations.Automation, lazy: bool, at: float
) -> partitioned.PartitionedEngine:
    engine = replica(*automations_)
    engine.add_partition(0, list(rows.values()), now=at, lazy=lazy)
    return engine


def test_only_the_buckets_due_soon_are_restored_at_takeover() -> None:
    counting, absence = automation(COUNT_THREE, "a1"), automation(ABSENCE, "a2")
    rows = records_before_the_failure(counting, absence)
    lazy = take_over(rows, counting, absence, lazy=True, at=T0 + 12)
    engine = lazy.engines[0]
    assert engine.deferred is not None
    # the windows ending at +15 and +16 are within LOAD_AHEAD of +12; the other 201 wait
    assert deferred.LOAD_AHEAD >= 4
    assert len(engine.deferred) == lazy.deferred_buckets() == 201
    assert engine.live_buckets() == 203


def test_a_bucket_touched_before_it_is_restored_behaves_as_if_it_had_been() -> None:
    counting = automation(COUNT_THREE)
    rows = records_before_the_failure(counting)
    eager_rows, lazy_rows = dict(rows), dict(rows)
    eager = take_over(eager_rows, counting, lazy=False, at=T0 + 10)
    lazy = take_over(lazy_rows, counting, lazy=True, at=T0 + 10)
    third = [event(f"t{k}", "x", 11, resource=f"k.{k}") for k in (3, 7, 150)]
    new_key = [event("n1", "x", 11, resource="k.new")]
    for batch in (third, new_key):
        assert apply(lazy_rows, lazy.process_raw(0, batch, T0 + 11)) == apply(
            eager_rows, eager.process_raw(0, batch, T0 + 11)
        )
    assert lazy_rows == eager_rows
    assert lazy.deferred_buckets() == 200 - 3  # only the touched keys were restored
    assert state(lazy) == state(eager)


def test_the_third_event_of_a_waiting_key_fires_as_it_would_have() -> None:
    counting = automation(COUNT_THREE)
    rows = records_before_the_failure(counting)
    lazy = take_over(dict(rows), counting, lazy=True, at=T0 + 10)
    fired = apply({}, lazy.process_raw(0, [event("t", "x", 11, resource="k.42")], T0 + 11))
    assert fired == [("t", "k.42")]


def test_windows_due_during_the_outage_fire_at_takeover() -> None:
    absence = automation(ABSENCE)
    rows = records_before_the_failure(absence)
    eager = take_over(dict(rows), absence, lazy=False, at=T0 + 30)
    lazy = take_over(dict(rows), absence, lazy=True, at=T0 + 30)
    assert lazy.next_due() == eager.next_due() == T0 + 15  # due while nobody owned it
    fired = apply({}, lazy.advance(T0 + 30))
    assert fired == apply({}, eager.advance(T0 + 30)) == [("s0", "w.0"), ("s1", "w.1")]


def test_a_waiting_window_fires_when_due_without_a_touch() -> None:
    absence = automation(ABSENCE)
    rows = records_before_the_failure(absence)
    lazy = take_over(dict(rows), absence, lazy=True, at=T0 + 30)
    apply({}, lazy.advance(T0 + 30))
    assert lazy.deferred_buckets() == 1  # w.2's window, ending at +100
    assert lazy.next_due() == T0 + 100
    assert apply({}, lazy.advance(T0 + 99)) == []
    assert apply({}, lazy.advance(T0 + 100)) == [("s2", "w.2")]
    assert lazy.deferred_buckets() == 0


def test_background_steps_restore_every_bucket_earliest_due_first() -> None:
    counting, absence = automation(COUNT_THREE, "a1"), automation(ABSENCE, "a2")
    rows = records_before_the_failure(counting, absence)
    eager = take_over(dict(rows), counting, absence, lazy=False, at=T0 + 12)
    lazy = take_over(dict(rows), counting, absence, lazy=True, at=T0 + 12)
    engine = lazy.engines[0]
    assert lazy.restore_deferred(1) == 1
    assert lazy.deferred_buckets() == 200  # the earliest due waiting one came first: w.2's
    assert lazy.next_due() == T0 + 15
    while lazy.restore_deferred(50):
        pass
    assert engine.deferred is None  # the evaluation path no longer looks
    assert state(lazy) == state(eager)


def test_a_partition_lost_mid_load_is_read_whole_by_its_next_owner() -> None:
    counting = automation(COUNT_THREE)
    rows = records_before_the_failure(counting)
    lazy = take_over(rows, counting, lazy=True, at=T0 + 10)
    lazy.restore_deferred(60)
    fired = apply(rows, lazy.process_raw(0, [event("t", "x", 11, resource="k.190")], T0 + 11))
    assert fired == [("t", "k.190")]  # committed before the loss
    lazy.drop_partition(0)  # lost (fenced, or taken over) with 139 buckets still waiting
    assert lazy.deferred_buckets() == 0 and lazy.next_due() is None
    lazy.add_partition(0, list(rows.values()), now=T0 + 12, lazy=True)
    next_owner = take_over(rows, counting, lazy=False, at=T0 + 12)
    assert state(lazy) == state(next_owner)


def test_an_update_keeps_the_waiting_buckets_of_unchanged_triggers() -> None:
    counting = automation(COUNT_THREE)
    rows = records_before_the_failure(counting)
    lazy = take_over(dict(rows), counting, lazy=True, at=T0 + 10)
    renamed = automation(COUNT_THREE)
    lazy.load_automation(renamed, now=T0 + 10)  # an update: same trigger, state kept
    assert lazy.deferred_buckets() == 0
    assert lazy.engines[0].live_buckets() == 200
    fired = apply({}, lazy.process_raw(0, [event("t", "x", 11, resource="k.5")], T0 + 11))
    assert fired == [("t", "k.5")]


def test_an_unloaded_automation_s_waiting_buckets_are_forgotten() -> None:
    counting, absence = automation(COUNT_THREE, "a1"), automation(ABSENCE, "a2")
    rows = records_before_the_failure(counting, absence)
    lazy = take_over(dict(rows), counting, absence, lazy=True, at=T0 + 12)
    lazy.unload_automation("a1")
    assert lazy.deferred_buckets() == 1  # w.2's window, of a2
    assert lazy.engines[0].live_buckets() == 3


def test_an_event_of_another_key_restores_nothing() -> None:
    counting = automation(COUNT_THREE)
    rows = records_before_the_failure(counting)
    lazy = take_over(dict(rows), counting, lazy=True, at=T0 + 10)
    evs: list[events.Event] = [event("o", "x", 11, resource="other")]
    apply({}, lazy.process_raw(0, evs, T0 + 11))
    assert lazy.deferred_buckets() == 200
