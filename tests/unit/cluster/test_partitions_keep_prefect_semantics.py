"""A replica's partitions: each evaluates its share, forwards the rest, and moves with its records."""

from __future__ import annotations

import itertools

from automations.cluster import partitioned, routing
from automations.domain import automations, events
from automations.engine.python_matcher import PythonMatcher
from automations.engine.state import StateRecord, Step
from tests.unit.engine.helpers import T0, automation, event

Q = 8


def replica(
    *automations_: automations.Automation, owned: range = range(Q)
) -> partitioned.PartitionedEngine:
    counter = itertools.count(1)
    engine = partitioned.PartitionedEngine(Q, PythonMatcher(), new_id=lambda: f"f{next(counter)}")
    for p in owned:
        engine.add_partition(p, now=T0)
    for a in automations_:
        engine.load_automation(a, now=T0)
    return engine


class Store:
    """Each partition's records, as the database keeps them."""

    def __init__(self) -> None:
        self.rows: dict[int, dict[tuple[str, str, str, str], StateRecord]] = {}

    def apply(self, partition: int, step: Step) -> None:
        rows = self.rows.setdefault(partition, {})
        for record in step.deletes:
            rows.pop(record.identity, None)
        for record in step.upserts:
            rows[record.identity] = record


def take(
    engine: partitioned.PartitionedEngine,
    evs: list[events.Event],
    now: float,
    store: Store | None = None,
) -> list[str]:
    """Processes raw events one at a time, delivering forwards; returns the firings' event ids."""
    fired: list[str] = []

    def record(outcome: partitioned.Outcome) -> None:
        if store is not None:
            store.apply(outcome.partition, outcome.step)
        fired.extend(str(f.triggering_event_id) for f in outcome.step.firings)

    for ev in evs:
        for outcome in engine.process_raw(routing.event_partition(ev, Q), [ev], now):
            record(outcome)
            for q, forwarded in outcome.forwards.items():
                record(engine.process_forwarded(q, forwarded, now))
    return fired


def test_a_keyed_bucket_counts_events_of_every_resource_in_one_partition() -> None:
    per_flow = automation(
        {
            "type": "event",
            "posture": "Reactive",
            "expect": ["run.failed"],
            "for_each": ["related:flow:prefect.resource.id"],
            "threshold": 3,
            "within": 60,
        }
    )
    engine = replica(per_flow)
    flow = ({"prefect.resource.id": "flow.1", "prefect.resource.role": "flow"},)
    runs = [event(f"e{k}", "run.failed", k, resource=f"run.{k}", related=flow) for k in range(3)]
    assert len({routing.event_partition(e, Q) for e in runs}) == 3  # three raw partitions
    assert take(engine, runs, T0 + 3) == ["e2"]


def test_a_proactive_trigger_watching_back_to_back_windows_fires_once_not_once_per_partition() -> (
    None
):
    silent = automation(
        {
            "type": "event",
            "posture": "Proactive",
            "expect": ["heartbeat"],
            "threshold": 1,
            "within": 30,
        }
    )
    engine = replica(silent)
    fired = [f for o in engine.advance(T0 + 31) for f in o.step.firings]
    assert len(fired) == 1
    assert [p for p, e in engine.engines.items() if e.loaded_automations()] == [
        routing.home_partition("a1", Q)
    ]


def test_a_partition_taken_over_continues_from_its_records() -> None:
    three = automation(
        {
            "type": "event",
            "posture": "Reactive",
            "expect": ["x"],
            "for_each": ["prefect.resource.id"],
            "threshold": 3,
            "within": 60,
        }
    )
    store = Store()
    first = replica(three)
    assert take(first, [event("e1", "x", 1), event("e2", "x", 2)], T0 + 2, store) == []
    p = routing.raw_partition("r.1", Q)
    # another replica takes over partition p alone, from p's records only
    second = partitioned.PartitionedEngine(Q, PythonMatcher())
    second.load_automation(three, now=T0 + 3)
    second.add_partition(p, store.rows[p].values(), now=T0 + 3)
    assert take(second, [event("e3", "x", 3)], T0 + 3) == ["e3"]


def test_a_follower_of_a_leader_in_another_partition_waits_only_for_the_leader() -> None:
    any_x = automation(
        {"type": "event", "posture": "Reactive", "expect": ["x"], "threshold": 1, "within": 0}
    )
    engine = replica(any_x)
    leader = event("lead", "y", 5, resource="res.a")
    follower = event("follow", "x", 4, resource="res.b", follows="lead")
    assert routing.event_partition(leader, Q) != routing.event_partition(follower, Q)
    assert take(engine, [follower], T0 + 4) == []  # held: its leader is not seen yet
    assert take(engine, [leader], T0 + 5) == ["follow"]  # released by the other partition


def test_a_dropped_partition_no_longer_evaluates() -> None:
    aligned = automation(
        {
            "type": "event",
            "posture": "Reactive",
            "expect": ["x"],
            "for_each": ["prefect.resource.id"],
            "threshold": 1,
            "within": 0,
        }
    )
    engine = replica(aligned)
    p = routing.raw_partition("r.1", Q)
    engine.drop_partition(p)
    assert p not in engine.engines and len(engine.engines) == Q - 1
