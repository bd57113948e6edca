"""Causal ordering (follows), dedup of redelivered ids and log-write filtering."""

from __future__ import annotations

from automations.engine.clock import EventClock
from automations.engine.ordering import CausalOrdering
from tests.unit.engine.helpers import T0, automation, engine, event, fired, run

ANY = {"type": "event", "posture": "Reactive", "within": 0}


def ids(events: list[object]) -> list[str]:
    return [e.id for e in events]  # type: ignore[attr-defined]


def test_followers_are_processed_right_after_their_leader_in_occurred_order() -> None:
    ordering = CausalOrdering(EventClock())
    assert ordering.take([event("c2", "x", 3, follows="lead")], T0 + 3) == []
    assert ordering.take([event("c1", "x", 2, follows="lead")], T0 + 4) == []
    taken = ordering.take([event("lead", "x", 5)], T0 + 5)
    assert ids(taken) == ["lead", "c1", "c2"]


def test_a_follower_of_a_processed_leader_is_processed_at_once() -> None:
    ordering = CausalOrdering(EventClock())
    ordering.take([event("lead", "x", 1)], T0 + 1)
    assert ids(ordering.take([event("f", "x", 2, follows="lead")], T0 + 2)) == ["f"]


def test_following_itself_or_being_old_skips_the_wait() -> None:
    ordering = CausalOrdering(EventClock())
    assert ids(ordering.take([event("s", "x", 1, follows="s")], T0 + 1)) == ["s"]
    old = event("o", "x", 1000, occurred=100, follows="never")
    assert ids(ordering.take([old], T0 + 1000)) == ["o"]


def test_leaders_and_followers_within_one_batch_keep_their_order() -> None:
    ordering = CausalOrdering(EventClock())
    batch = [
        event("f1", "x", 1, occurred=1, follows="lead"),  # before its leader: held, then released
        event("a", "x", 1, occurred=4),
        event("lead", "x", 1, occurred=2),
        event("f2", "x", 1, occurred=3, follows="lead"),  # after it: taken at once
        event("fa", "x", 1, occurred=5, follows="a"),
        event("lead", "x", 1, occurred=2),  # redelivered within the batch
    ]
    assert ids(ordering.take(batch, T0 + 10)) == ["a", "lead", "f1", "f2", "fa"]
    assert ordering.clock.clock == T0 + 5  # the latest occurred of the batch
    assert sorted(ordering.drain()[0]) == ["a", "f1", "f2", "fa", "lead"]


def test_a_chain_deeper_than_20_stops_and_the_rest_is_lost_later() -> None:
    ordering = CausalOrdering(EventClock())
    chain = [event(f"e{i}", "x", 1, occurred=i / 100, follows=f"e{i - 1}") for i in range(1, 25)]
    for follower in reversed(chain):
        assert ordering.take([follower], T0 + 1) == []
    taken = ordering.take([event("e0", "x", 1)], T0 + 2)
    assert ids(taken) == [f"e{i}" for i in range(21)]
    assert ordering.next_lost() == T0 + 900.21
    assert ids(ordering.take_lost(T0 + 901)) == ["e21", "e22", "e23", "e24"]


def test_lost_followers_of_one_instant_go_in_occurred_order() -> None:
    ordering = CausalOrdering(EventClock())
    ordering.take([event("b", "x", 10, occurred=5, follows="gone")], T0 + 10)
    ordering.take([event("a", "x", 10, occurred=4, follows="gone2")], T0 + 10)
    assert ordering.take_lost(T0 + 903.5) == []
    assert ids(ordering.take_lost(T0 + 905)) == ["a", "b"]


def test_a_redelivered_id_is_ignored_for_30_minutes() -> None:
    eng = engine()
    eng.load_automation(automation(ANY), now=T0)
    assert fired(eng.process([event("e", "x", 0)], T0)) == [(0.0, "e", {})]
    assert fired(eng.process([event("e", "x", 0)], T0 + 1799)) == []
    assert fired(eng.process([event("e", "x", 0)], T0 + 1800)) == [(1800.0, "e", {})]


def test_a_redelivered_held_follower_is_still_held_once() -> None:
    eng = engine()
    eng.load_automation(automation(ANY), now=T0)
    timeline = [
        (1, [event("f", "x", 1, follows="lead")]),
        (2, [event("f", "x", 1, follows="lead")]),
        (3, [event("lead", "x", 3)]),
    ]
    assert run(eng, timeline, 2000) == [(3.0, "lead", {}), (3.0, "f", {})]


def test_log_writes_never_reach_triggers() -> None:
    eng = engine()
    eng.load_automation(automation({**ANY, "expect": ["prefect.log.*"]}), now=T0)
    batch = [event("w", "prefect.log.write", 0), event("r", "prefect.log.rotated", 0)]
    assert fired(eng.process(batch, T0)) == [(0.0, "r", {})]


def test_the_event_clock_only_moves_forward_but_every_event_moves_its_update_time() -> None:
    clock = EventClock()
    assert clock.offset() == 0.0
    clock.update(T0 + 100, T0 + 100)
    clock.update(T0 + 50, T0 + 110)  # older than the clock: C stays, U moves
    assert clock.clock == T0 + 100
    assert clock.offset() == -10.0
    clock.update(T0 + 500, T0 + 120)  # from the future: clamped to now
    assert clock.clock == T0 + 120
    assert clock.offset() == 0.0
    assert clock.due_at(T0 + 130) == T0 + 130


def test_a_held_follower_moves_the_event_clock_on_arrival_and_when_processed() -> None:
    eng = engine()
    eng.process([event("f", "x", 100, occurred=10, follows="lead")], T0 + 100)
    assert eng.clock.offset() == -90.0
    eng.process([event("lead", "x", 200, occurred=20)], T0 + 200)
    assert eng.clock.clock == T0 + 20
    assert eng.clock.updated == T0 + 200


def test_the_seen_ids_are_bounded_oldest_first() -> None:
    ordering = CausalOrdering(EventClock(), max_seen=2)
    ordering.take([event("a", "x", 1), event("b", "x", 2), event("c", "x", 3)], T0 + 3)
    assert not ordering.has_been_seen("a", T0 + 3)
    assert ordering.has_been_seen("b", T0 + 3) and ordering.has_been_seen("c", T0 + 3)


def test_ids_taken_one_call_at_a_time_expire_and_evict_in_order() -> None:
    ordering = CausalOrdering(EventClock(), max_seen=3, seen_ttl=10.0)
    for k, name in enumerate("abcd"):  # one call each: one expiry instant each
        ordering.take([event(name, "x", k)], T0 + k)
    assert [ordering.has_been_seen(n, T0 + 4) for n in "abcd"] == [False, True, True, True]
    ordering.take([event("e", "x", 5), event("f", "x", 5)], T0 + 5)  # one instant, two ids
    assert [ordering.has_been_seen(n, T0 + 5) for n in "cdef"] == [False, True, True, True]
    ordering.expire_seen(T0 + 13.5)  # d expired at T0 + 13
    assert [ordering.has_been_seen(n, T0 + 13.5) for n in "def"] == [False, True, True]
    ordering.expire_seen(T0 + 15)
    assert ordering.seen_items() == []


def test_remembering_an_id_costs_little_memory_even_one_event_per_call() -> None:
    import tracemalloc

    ordering = CausalOrdering(EventClock())
    names = [f"id-{k:06d}" for k in range(20_000)]  # made before measuring
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for k, name in enumerate(names):
        ordering.take([event(name, "x", 0)], T0 + k * 0.001)
        ordering.new_seen.clear()  # drained by the store after each call
    per_id = (tracemalloc.get_traced_memory()[0] - before) / len(names)
    tracemalloc.stop()
    # the dict entry and expiry float (~100 bytes) and a share of the flat deque; a deque per
    # call cost ~700 bytes per id
    assert per_id < 250, per_id


def test_a_leader_later_in_the_batch_being_taken_is_not_asked_about() -> None:
    ordering = CausalOrdering(EventClock())
    asked: list[str] = []

    def stored(leader: str, now: float) -> bool:  # the log holds the whole batch already
        asked.append(leader)
        return True

    ordering.leader_seen = stored
    batch = [event("f", "x", 1, occurred=2, follows="lead"), event("lead", "x", 1, occurred=1)]
    assert ids(ordering.take(batch, T0 + 1)) == ["lead", "f"]
    assert asked == []
    assert ids(ordering.take([event("g", "x", 2, follows="earlier")], T0 + 2)) == ["g"]
    assert asked == ["earlier"]
