"""The partitioned engine on a virtual clock: conformance scenarios through cluster routing.

:func:`run` is ``engine.simulation.run`` with the one engine replaced by a
:class:`~automations.cluster.partitioned.PartitionedEngine` owning all ``Q`` partitions: each
instant's events are split by raw partition (in order), each partition takes up its share, and
what it forwards is handed at once to the destination partitions (in the events' order). A
restart step rebuilds every partition from its own records, as a takeover does. With ``Q = 1``
nothing is forwarded; with ``Q > 1`` the same scenario must give the same firings, which shows
that the routing classes, forwarding and per-partition state preserve Prefect's semantics.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from automations.cluster import partitioned, routing
from automations.domain import automations, events, firings, prefect_json
from automations.engine import matching, simulation
from automations.engine.clock import quantize
from automations.engine.state import StateRecord, Step


class _Stores:
    """Every partition's state records so far, as the store keeps them."""

    def __init__(self) -> None:
        self.rows: dict[int, dict[tuple[str, str, str, str], StateRecord]] = {}

    def apply(self, partition: int, step: Step) -> list[firings.Firing]:
        rows = self.rows.setdefault(partition, {})
        for record in step.deletes:
            rows.pop(record.identity, None)
        for record in step.upserts:
            rows[record.identity] = record
        return step.firings


def run(
    automation: automations.Automation,
    steps: Sequence[simulation.Step_],
    until: float,
    *,
    partitions: int,
    matcher_factory: Callable[[], matching.Matcher] = simulation.rete_matcher,
    start: float = simulation.EPOCH,
    lazy: bool = False,
    takeovers: bool = False,
) -> list[firings.Firing]:
    """Runs ``automation`` over timed events through ``partitions`` partitions.

    Arguments as ``engine.simulation.run``; returns the firings of every partition. ``lazy``
    rebuilds partitions as a lazy takeover does, with nothing loaded ahead (every ``for_each``
    bucket not due yet waits until an event touches it or it comes due); ``takeovers`` rebuilds
    every partition from its records before each instant, as if each were taken over again.
    """
    counter = itertools.count(1)
    stores = _Stores()

    def build(now: float) -> partitioned.PartitionedEngine:
        engine = partitioned.PartitionedEngine(
            partitions,
            matcher_factory(),
            new_id=lambda: f"firing-{next(counter)}",
            derive_ids=False,
        )
        engine.automations[automation.id] = automation
        engine.router.add(automation)
        engine.matcher.load(automation.id, partitioned.matcher_triggers(automation))
        for p in range(partitions):
            engine.add_partition(
                p, stores.rows.get(p, {}).values(), now=now, lazy=lazy, load_ahead=0.0
            )
        return engine

    engine = build(start)
    out: list[firings.Firing] = []

    def settle(outcomes: list[partitioned.Outcome], instant: float) -> None:
        """Records outcomes and delivers what they forward (forwarded events forward nothing)."""
        pending: dict[int, list[events.Event]] = {}
        for outcome in outcomes:
            out.extend(stores.apply(outcome.partition, outcome.step))
            for q, forwarded in outcome.forwards.items():
                pending.setdefault(q, []).extend(forwarded)
        for q in sorted(pending):
            outcome = engine.process_forwarded(q, pending[q], instant)
            out.extend(stores.apply(q, outcome.step))

    def take(batch: list[events.Event], instant: float) -> None:
        by_partition: dict[int, list[events.Event]] = {}
        for event in batch:
            by_partition.setdefault(routing.event_partition(event, partitions), []).append(event)
        outcomes: list[partitioned.Outcome] = []
        for p, part in by_partition.items():
            outcomes.extend(engine.process_raw(p, part, instant))
        settle(outcomes, instant)

    for instant, items in simulation.instants(
        steps,
        until,
        start=start,
        next_due=lambda: engine.next_due(),  # noqa: B023 - the engine of the moment
    ):
        if takeovers:
            engine = build(instant)
        settle(engine.advance(instant), instant)
        batch: list[events.Event] = []
        for event in items:
            if event is not None:
                batch.append(event)
                continue
            if batch:
                take(batch, instant)
                batch = []
            engine = build(instant)
            settle(engine.advance(instant), instant)
        if batch:
            take(batch, instant)
        due = engine.next_due()
        if due is not None and due <= instant:
            settle(engine.advance(instant), instant)
    return out


def scenario_outcome(
    scenario: Mapping[str, Any],
    *,
    partitions: int,
    matcher_factory: Callable[[], matching.Matcher] = simulation.rete_matcher,
    epoch: float = simulation.EPOCH,
    lazy: bool = False,
    takeovers: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """Replays one conformance scenario through ``partitions`` partitions.

    Returns ``{"firings": [...], "resolutions": [...]}`` as ``engine.simulation`` does.
    """
    automation = prefect_json.parse_automation(
        scenario["automation"], automation_id=simulation.SCENARIO_AUTOMATION_ID
    )
    steps: list[simulation.Step_] = [
        (
            quantize(epoch + float(step["at"])),
            None if step.get("restart") is True else simulation.scenario_event(step, epoch),
        )
        for step in scenario["steps"]
    ]
    until = quantize(epoch + float(scenario["until"]))
    fired = run(
        automation,
        steps,
        until,
        partitions=partitions,
        matcher_factory=matcher_factory,
        start=epoch,
        lazy=lazy,
        takeovers=takeovers,
    )
    triggered, resolved = simulation.split(fired)
    return {
        "firings": [simulation.firing_row(f, epoch) for f in triggered],
        "resolutions": [simulation.firing_row(f, epoch) for f in resolved],
    }
