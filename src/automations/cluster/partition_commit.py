"""What one partition commit writes: state by partition, firings, invocations and log messages.

A replica commits each batch of a partition's input (raw events, forwarded events, due deadlines)
in one PostgreSQL transaction whose first statement is the fence (``fencing.fence``, run by
``replica_backend``). :func:`persist` writes the rest of it from the partitioned engine's outcomes:

* each outcome's state records into ``partition_state`` under its partition;
* its firings, and each firing's plan (``actions.planning``, as the single-node cascade plans it):
  the invocations into the action outbox tagged with the partition (its owner dispatches them),
  and the lifecycle events (``prefect.automation.triggered``, ``...action.triggered``, an instant
  ``do-nothing``'s ``...action.executed``) as messages for the raw stream, with their lineage;
* the events each outcome forwards, one message per destination partition, for the forward stream.

The one difference from the single-node cascade: lifecycle events are not appended to the event
log and evaluated in the same transaction. They are relayed to the raw partition of their resource
(``prefect.automation.<id>``) after the commit, and its owner, on whatever replica, logs and
evaluates them in a commit of its own, milliseconds later. The loop guard still holds: each
automation-made event's chain depth and origin are stored with it (``cluster_lineage``) and read
back by the replica that evaluates it. The causal tree's firing budget (``max_cascade_firings``)
is counted per replica.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from automations import metrics
from automations.actions import planning
from automations.cluster import log_encoding, partition_store, partitioned, routing
from automations.domain import automations, events, firings, invocations
from automations.pipeline import cascade
from automations.store import firings_repo, outbox_repo

MAX_MESSAGE_EVENTS = 500
"""The most events in one log message the relay publishes."""
MAX_MESSAGE_BYTES = 512 * 1024
"""About the most bytes of one log message the relay publishes (NATS' default limit is 1 MiB)."""
_VERSION = bytes((log_encoding.VERSION,))


@dataclasses.dataclass(slots=True)
class Written:
    """What a commit wrote besides state: for after the commit.

    Attributes:
        jobs: Invocations written ``running``, for the dispatcher once committed.
        messages: Log messages written for the relay.
        firings: Firings written.
    """

    jobs: list[planning.Job] = dataclasses.field(default_factory=list)
    messages: int = 0
    firings: int = 0


class Planner:
    """Plans firings as the single-node cascade does, with lineage read from the store.

    Args:
        automations: The replica's enabled automations, by id (as the engine has them).
        partitions: ``Q``, the cluster's partition count.
        max_chain_depth: The loop guard (``actions.planning``).
        max_cascade_firings: Firings on automation-made events per causal tree (per replica).
        lease: Seconds an invocation handed straight to the dispatcher stays leased.
    """

    def __init__(
        self,
        automations: Mapping[str, automations.Automation],
        partitions: int,
        *,
        max_chain_depth: int,
        max_cascade_firings: int,
        lease: float,
    ) -> None:
        self.automations = automations
        self.partitions = partitions
        self.max_chain_depth = max_chain_depth
        self.lease = lease
        self.capacity: Callable[[], int] = lambda: 0
        """How many invocations the dispatcher takes now (the rest are written ``pending``)."""
        self._trees = cascade.TreeBudget(max_cascade_firings)

    def plan(
        self,
        fired: Sequence[firings.Firing],
        lineage: Mapping[str, tuple[int, str]],
        now: float,
        budget: list[int],
    ) -> planning.Plan:
        """The invocations and lifecycle events of ``fired``.

        Args:
            fired: The firings of one partition's outcome.
            lineage: Chain depth and origin of the automation-made events evaluated.
            now: The time of the commit.
            budget: ``[invocations the dispatcher may still take in this commit]``, spent here.
        """
        plan, budget[0] = cascade.plan_fired(
            fired,
            self.automations,
            lineage,
            self._trees,
            now=now,
            lease=self.lease,
            max_depth=self.max_chain_depth,
            budget=budget[0],
        )
        return plan


def persist(
    conn: Any, outcomes: Sequence[partitioned.Outcome], planner: Planner, now: float
) -> Written:
    """Writes the outcomes of one commit (after its fence); see the module docstring.

    The lineage of the events that caused firings is read here (one query, only when something
    fired): whichever replica made an event stored it.
    """
    written = Written()
    budget = [planner.capacity()]
    messages: list[partition_store.Message] = []
    causes = [
        firing.triggering_event.id
        for outcome in outcomes
        for firing in outcome.step.firings
        if firing.triggering_event is not None
    ]
    lineage = partition_store.get_lineage(conn, causes) if causes else {}
    for outcome in outcomes:
        step = outcome.step
        partition = outcome.partition
        if step.upserts:
            partition_store.upsert_state(conn, partition, step.upserts)
        if step.deletes:
            partition_store.delete_state(conn, partition, step.deletes)
        if step.firings:
            firings_repo.insert_many(conn, step.firings)
            written.firings += len(step.firings)
            for firing in step.firings:
                metrics.FIRINGS.labels(firing.trigger_type, firing.posture or "").inc()
            plan = planner.plan(step.firings, lineage, now, budget)
            if plan.invocations:
                outbox_repo.add_many(conn, plan.invocations, partition=partition)
                by_id = {firing.id: firing for firing in step.firings}
                written.jobs.extend(
                    planning.Job(invocation, by_id.get(invocation.firing_id))
                    for invocation in plan.invocations
                    if invocation.status == invocations.InvocationStatus.RUNNING
                )
            messages.extend(event_messages(plan.events, planner.partitions, partition))
            partition_store.add_lineage(
                conn, ((c.event.id, c.depth, c.origin) for c in plan.events), now
            )
        for destination, forwarded in sorted(outcome.forwards.items()):
            messages.extend(forward_messages(partition, destination, forwarded))
    partition_store.add_messages(conn, messages, now)
    written.messages = len(messages)
    return written


def event_messages(
    caused: Sequence[planning.Caused], partition_count: int, relayed_by: int | None
) -> list[partition_store.Message]:
    """Raw-stream messages for automation-made events, by the raw partition of each event.

    Args:
        caused: The events.
        partition_count: ``Q``.
        relayed_by: The partition whose owner relays them (a commit's own partition); None: the
            destination's owner (a write that no partition's commit covers).
    """
    by_destination: dict[int, list[events.Event]] = {}
    for item in caused:
        destination = routing.event_partition(item.event, partition_count)
        by_destination.setdefault(destination, []).append(item.event)
    return [
        partition_store.Message(
            partition=destination if relayed_by is None else relayed_by,
            stage=partition_store.RAW,
            destination=destination,
            msg_id=log_encoding.batch_id(destination, ids),
            payload=payload,
        )
        for destination, batch in sorted(by_destination.items())
        for ids, payload in encode_chunks(batch)
    ]


def forward_messages(
    source: int, destination: int, forwarded: Sequence[events.Event]
) -> list[partition_store.Message]:
    """Forward-stream messages carrying ``forwarded`` from ``source`` to ``destination``."""
    return [
        partition_store.Message(
            partition=source,
            stage=partition_store.FWD,
            destination=destination,
            msg_id="",
            payload=payload,
        )
        for _ids, payload in encode_chunks(forwarded)
    ]


def encode_chunks(batch: Sequence[events.Event]) -> list[tuple[list[str], bytes]]:
    """Cuts ``batch`` into log payloads, in order, with the ids each carries.

    At most :data:`MAX_MESSAGE_EVENTS` events and about :data:`MAX_MESSAGE_BYTES` bytes each (an
    event larger than that travels alone).
    """
    out: list[tuple[list[str], bytes]] = []
    ids: list[str] = []
    frames: list[bytes] = []
    size = 0
    for event in batch:
        frame = log_encoding.encode_events((event,))[1:]  # without the version byte
        if frames and (len(frames) >= MAX_MESSAGE_EVENTS or size + len(frame) > MAX_MESSAGE_BYTES):
            out.append((ids, _VERSION + b"".join(frames)))
            ids, frames, size = [], [], 0
        ids.append(event.id)
        frames.append(frame)
        size += len(frame)
    if frames:
        out.append((ids, _VERSION + b"".join(frames)))
    return out
