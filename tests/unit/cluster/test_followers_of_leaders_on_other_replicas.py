"""Followers whose leaders another replica processes: held, then released once the leader is
committed and its commit relayed (``cluster.remote_leaders``), in order, before they are lost."""

from __future__ import annotations

from automations.cluster import partitioned, remote_leaders, routing
from automations.engine import ordering
from tests.unit.cluster.test_partitions_keep_prefect_semantics import Q, replica, take
from tests.unit.engine.helpers import T0, automation, event

ANY_X = automation(  # ALIGNED: fires in the event's raw partition
    {
        "type": "event",
        "posture": "Reactive",
        "expect": ["x", "x1", "x2"],
        "for_each": ["prefect.resource.id"],
        "threshold": 1,
        "within": 0,
    }
)


def fired(outcomes: list[partitioned.Outcome]) -> list[str]:
    return [str(f.triggering_event_id) for o in outcomes for f in o.step.firings]


def test_a_follower_of_a_leader_no_owned_partition_saw_is_held_and_awaits_it() -> None:
    follower = event("follow", "x", 4, resource="res.b", follows="lead")
    engine = replica(ANY_X, owned=range(routing.event_partition(follower, Q), Q))
    assert take(engine, [follower], T0 + 4) == []
    assert engine.holds_followers()
    assert engine.awaited_leaders(T0 + 4) == ["lead"]


def test_releasing_a_leader_committed_elsewhere_processes_its_follower_and_stops_awaiting() -> None:
    follower = event("follow", "x", 4, resource="res.b", follows="lead")
    engine = replica(ANY_X, owned=range(routing.event_partition(follower, Q), Q))
    take(engine, [follower], T0 + 4)

    released = engine.release_followers({"lead"}, T0 + 5)

    assert fired(released) == ["follow"]
    assert all(o.step.deletes for o in released)  # the held follower's record goes
    assert not engine.holds_followers()
    assert engine.awaited_leaders(T0 + 5) == []


def test_releasing_an_unrelated_leader_leaves_the_follower_held() -> None:
    follower = event("follow", "x", 4, resource="res.b", follows="lead")
    engine = replica(ANY_X, owned=range(routing.event_partition(follower, Q), Q))
    take(engine, [follower], T0 + 4)
    assert engine.release_followers({"someone-else"}, T0 + 5) == []
    assert engine.awaited_leaders(T0 + 5) == ["lead"]


def test_a_follower_whose_leader_was_committed_elsewhere_is_processed_on_arrival() -> None:
    follower = event("follow", "x", 4, resource="res.b", follows="lead")
    partition = routing.event_partition(follower, Q)
    engine = replica(ANY_X, owned=range(partition, partition + 1))
    outcomes = engine.process_raw(partition, [follower], T0 + 4, processed_elsewhere={"lead"})
    assert fired(outcomes) == ["follow"]
    assert not engine.holds_followers()
    # what is processed elsewhere is named per call: the next follower waits again
    again = event("again", "x", 5, resource="res.b", follows="lead")
    assert fired(engine.process_raw(partition, [again], T0 + 5)) == []


def test_a_released_follower_releases_its_own_followers_in_other_owned_partitions_after_it() -> (
    None
):
    first = event("first", "x1", 4, resource="res.b", follows="lead")
    second = event("second", "x2", 3, resource="res.a", follows="first")
    assert routing.event_partition(first, Q) != routing.event_partition(second, Q)
    engine = replica(ANY_X)  # owns every partition, but "lead" is another replica's raw event
    assert take(engine, [second, first], T0 + 4) == []
    assert engine.awaited_leaders(T0 + 4) == ["lead"]  # "first" is awaited too, but held here

    assert fired(engine.release_followers({"lead"}, T0 + 5)) == ["first", "second"]


def test_a_follower_lost_before_its_leader_came_is_processed_on_its_own() -> None:
    follower = event("follow", "x", 4, resource="res.b", follows="lead")
    engine = replica(ANY_X, owned=range(routing.event_partition(follower, Q), Q))
    take(engine, [follower], T0 + 4)
    lost = engine.advance(T0 + 4 + ordering.PRECEDING_EVENT_LOOKBACK + 1)
    assert fired(lost) == ["follow"]
    assert engine.awaited_leaders(T0 + 4 + ordering.PRECEDING_EVENT_LOOKBACK + 1) == []


def test_a_leader_not_in_the_event_log_is_not_ready() -> None:
    leaders = remote_leaders.RemoteLeaders(Q)
    assert leaders.update(["lead"], committed={}, spans={}) == set()


def test_a_committed_leader_whose_partition_relayed_everything_is_ready_at_once() -> None:
    leaders = remote_leaders.RemoteLeaders(Q)
    assert leaders.update(["lead"], committed={"lead": 3}, spans={5: (1, 2)}) == {"lead"}


def test_a_committed_leader_waits_until_its_partition_relayed_the_rows_its_commit_wrote() -> None:
    leaders = remote_leaders.RemoteLeaders(Q)
    # found committed while partition 3 still had rows 5..9 to relay (its commit's among them)
    assert leaders.update(["lead"], committed={"lead": 3}, spans={3: (5, 9)}) == set()
    # later commits add rows, the relay has not passed row 9 yet
    assert leaders.update(["lead"], committed={}, spans={3: (9, 14)}) == set()
    # rows through 9 are published (rows of later commits may still wait)
    assert leaders.update(["lead"], committed={}, spans={3: (10, 14)}) == {"lead"}


def test_a_committed_leader_is_ready_when_its_partition_has_nothing_left_to_relay() -> None:
    leaders = remote_leaders.RemoteLeaders(Q)
    assert leaders.update(["lead"], committed={"lead": 3}, spans={3: (5, 9)}) == set()
    assert leaders.update(["lead"], committed={}, spans={}) == {"lead"}


def test_a_ready_leader_is_forgotten_and_looked_up_again_when_awaited_again() -> None:
    leaders = remote_leaders.RemoteLeaders(Q)
    assert leaders.update(["lead"], committed={"lead": 3}, spans={}) == {"lead"}
    assert leaders.update(["lead"], committed={}, spans={}) == set()


def test_leaders_no_follower_awaits_any_more_are_forgotten() -> None:
    leaders = remote_leaders.RemoteLeaders(Q)
    assert leaders.update(["lead"], committed={"lead": 3}, spans={3: (5, 9)}) == set()
    leaders.keep_only(set())
    assert leaders.update(["lead"], committed={}, spans={}) == set()
