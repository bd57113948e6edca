"""A replica's partitions: one trigger engine per owned partition, one matcher, one event clock.

Each owned partition ``p`` has its own :class:`~automations.engine.trigger_engine.TriggerEngine`
(its buckets, deadlines, composite and metric state, seen ids and held followers), so a partition
moves between replicas as a whole: its engine is dropped here and rebuilt there from its records.
The engines share the replica's matcher, loaded once with every automation (a raw partition must
match events against automations whose state lives elsewhere, to forward them), and the replica's
event clock (Prefect keeps one per process too).

Two kinds of input reach partition ``p``:

* **raw** events, the ones whose resource id hashes to ``p`` (:func:`routing.event_partition`):
  deduplicated, causally ordered and matched there. Touches evaluated in ``p`` are evaluated at
  once; the event is *forwarded* (once per destination, in evaluation order, so after its
  ``follows`` leader) to every other partition where one of its touches is evaluated
  (:class:`routing.Router`).
* **forwarded** events, from other partitions: evaluated for the touches that live in ``p`` only,
  never forwarded again, and without ``follows`` (their order was settled at their raw partition).

A follower's leader may be processed in another partition. One of this replica's partitions
releases the followers the others hold for it at once (:meth:`PartitionedEngine.process_raw`); a
leader processed by another replica is found in the event log by the caller, which names it
``processed_elsewhere`` (``cluster.remote_leaders``).

Which engine holds an automation: every engine holds the ``ALIGNED`` and ``KEYED`` ones (their
buckets may be anywhere); a ``WHOLE`` one is held by its home partition's engine only, so that a
trigger with one bucket, or a composite, exists once in the cluster.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

from automations.cluster import routing
from automations.domain import automations, events, ids, triggers
from automations.engine import deferred, matching, state
from automations.engine.clock import EventClock
from automations.engine.metrics.runtime import MetricRuntime
from automations.engine.trigger_engine import TriggerEngine

RESTORE_DELAY = 1.0
"""Seconds after an acquisition before deferred buckets are restored in the background (its
first commits go first; touched and due buckets are restored meanwhile all the same)."""
RESTORE_CHUNK = 250
"""Deferred buckets restored per background step (a few ms: a queued commit waits one step)."""
RESTORE_PAUSE = 0.002
"""Seconds between two background steps, in which queued commits go first."""


def matcher_triggers(automation: automations.Automation) -> list[triggers.EventTrigger]:
    """What the shared matcher is given for ``automation`` (what an engine would give it).

    Its event triggers, then each metric trigger's equivalent event trigger, as
    ``loading.Loaded.match_triggers`` lists them.
    """
    tree = triggers.iter_triggers(automation.trigger)
    out = [t for t in tree if isinstance(t, triggers.EventTrigger)]
    out.extend(
        MetricRuntime(automation.id, t, None).match_trigger
        for t in tree
        if isinstance(t, triggers.MetricTrigger)
    )
    return out


class RoutedMatcher:
    """One partition engine's matcher: the touches of the shared matcher that live here.

    While :attr:`forwarding`, each event with touches evaluated elsewhere is recorded in
    :attr:`forwards` for each such partition (once), in the order the engine evaluates events.

    Args:
        shared: The replica's matcher (loaded by :class:`PartitionedEngine`, not by this one).
        router: Where each touch is evaluated.
        partition: This engine's partition.
    """

    def __init__(self, shared: matching.Matcher, router: routing.Router, partition: int) -> None:
        self._shared = shared
        self._router = router
        self.partition = partition
        self.forwarding = True
        self.forwards: dict[int, list[events.Event]] = {}
        self.evaluated: list[str] = []
        """Ids of the raw events evaluated since the last :meth:`take_forwards`."""
        self._local: dict[tuple[str, str], triggers.EventTrigger] = {}

    def load(self, automation_id: str, event_triggers: Sequence[triggers.EventTrigger]) -> None:
        """Records the engine's own trigger objects (a metric runtime is found by its object)."""
        self.unload(automation_id)
        for trigger in event_triggers:
            self._local[(automation_id, trigger.id)] = trigger

    def unload(self, automation_id: str) -> None:
        """Forgets the engine's trigger objects of one automation."""
        for key in [k for k in self._local if k[0] == automation_id]:
            del self._local[key]

    def close(self) -> None:
        """Nothing to give back (the shared matcher is the replica's)."""

    def match_batch(self, batch: Sequence[events.Event]) -> list[list[matching.Touch]]:
        """The touches of each event that are evaluated in this partition (forwarding others)."""
        full = self._shared.match_batch(batch)
        if self.forwarding:
            self.evaluated.extend(event.id for event in batch)
        partition = self.partition
        where = self._router.partition
        local_objects = self._local
        out: list[list[matching.Touch]] = []
        for event, touches in zip(batch, full, strict=True):
            if not touches:
                out.append(touches)
                continue
            local: list[matching.Touch] = []
            sent: set[int] | None = None
            for touch in touches:
                q = where(touch, event)
                if q == partition:
                    own = local_objects.get((touch.automation_id, touch.trigger.id))
                    if own is not None and own is not touch.trigger:
                        touch = dataclasses.replace(touch, trigger=own)
                    local.append(touch)
                elif q is not None and self.forwarding:
                    if sent is None:
                        sent = set()
                    if q not in sent:
                        sent.add(q)
                        self.forwards.setdefault(q, []).append(forwarded(event))
            out.append(local)
        return out

    def take_forwards(self) -> tuple[dict[int, list[events.Event]], list[str]]:
        """What was recorded since the last call: events to forward, and raw events evaluated.

        Returns:
            The events to forward by destination partition, and the ids of the raw events
            evaluated (leaders whose followers other partitions may hold).
        """
        out, self.forwards = self.forwards, {}
        evaluated, self.evaluated = self.evaluated, []
        return out, evaluated


def forwarded(event: events.Event) -> events.Event:
    """``event`` as another partition receives it: its ``follows`` already honoured."""
    return event if event.follows is None else dataclasses.replace(event, follows=None)


@dataclasses.dataclass(slots=True)
class Outcome:
    """What one call did in one partition: its step, and the events it forwards.

    Attributes:
        partition: The partition.
        step: The firings and the state records to persist with the partition's commit.
        forwards: Events to hand to other partitions, by destination, in order.
    """

    partition: int
    step: state.Step
    forwards: dict[int, list[events.Event]]

    def changes_something(self) -> bool:
        """Whether committing it writes anything (firings, state, forwards)."""
        step = self.step
        return bool(step.firings or step.upserts or step.deletes or self.forwards)


class PartitionedEngine:
    """The owned partitions of a replica, each with its engine.

    Args:
        partitions: ``Q``, the cluster's partition count.
        matcher: The replica's matcher (every automation is loaded into it).
        new_id: Makes firing ids when ``derive_ids`` is off.
        clock: The replica's event clock (a fresh one when omitted).
        derive_ids: Derive firing ids from what makes each firing (the default: a partition
            evaluated again after a failover makes the same firings with the same ids).
    """

    def __init__(
        self,
        partitions: int,
        matcher: matching.Matcher,
        *,
        new_id: Callable[[], str] = ids.uuid7,
        clock: EventClock | None = None,
        derive_ids: bool = True,
    ) -> None:
        self.router = routing.Router(partitions)
        self.matcher = matcher
        self.clock = clock if clock is not None else EventClock()
        self._new_id = new_id
        self._derive_ids = derive_ids
        self.engines: dict[int, TriggerEngine] = {}
        self.automations: dict[str, automations.Automation] = {}
        self._elsewhere: Collection[str] = ()

    # --- automations ---

    def load_automation(
        self,
        automation: automations.Automation,
        records: Mapping[int, Iterable[state.RecordLike]] | None = None,
        *,
        now: float | None = None,
    ) -> None:
        """Loads (or updates) an automation in the matcher and in the engines that hold it.

        Args:
            automation: The automation (enabled).
            records: Its persisted records by partition (for owned partitions).
            now: Wall time of loading.
        """
        self.automations[automation.id] = automation
        self.router.add(automation)
        self.matcher.load(automation.id, matcher_triggers(automation))
        for partition, engine in self.engines.items():
            if self.router.loads_in(automation, partition):
                engine.load_automation(automation, (records or {}).get(partition, ()), now=now)
            else:  # an update that moved it (its state starts afresh at its new home)
                engine.unload_automation(automation.id)

    def unload_automation(self, automation_id: str) -> None:
        """Unloads an automation everywhere."""
        self.automations.pop(automation_id, None)
        for engine in self.engines.values():
            engine.unload_automation(automation_id)
        self.matcher.unload(automation_id)
        self.router.remove(automation_id)

    # --- partitions ---

    def add_partition(
        self,
        partition: int,
        records: Iterable[state.RecordLike] = (),
        *,
        now: float | None = None,
        lazy: bool = False,
        load_ahead: float = deferred.LOAD_AHEAD,
    ) -> TriggerEngine:
        """Starts evaluating ``partition``: its engine, restored from its records.

        Args:
            partition: The partition taken over.
            records: Every state record of the partition (engine-wide ones included).
            now: Wall time of the takeover.
            lazy: Restore the ``for_each`` buckets due more than ``load_ahead`` seconds (event
                time) after ``now`` on demand (``engine.deferred``: on touch, when due, or by
                :meth:`restore_deferred`) instead of now.
            load_ahead: See ``lazy``.
        """
        engine = TriggerEngine(
            RoutedMatcher(self.matcher, self.router, partition),
            new_id=self._new_id,
            clock=self.clock,
            derive_ids=self._derive_ids,
        )
        engine.ordering.leader_seen = self._seen_in_another_partition
        rows = list(records)
        before = (self.clock.clock, self.clock.updated)
        engine.restore_global(r for r in rows if _automation_of(r) == "")
        _merge_clock(self.clock, before)
        held = [a for a in self.automations.values() if self.router.loads_in(a, partition)]
        defer_after = None
        if lazy and now is not None:
            defer_after = self.clock.as_of(now) + load_ahead
        engine.load_automations(
            held, (r for r in rows if _automation_of(r) != ""), now=now, defer_after=defer_after
        )
        self.engines[partition] = engine
        return engine

    def deferred_buckets(self) -> int:
        """How many buckets of owned partitions wait to be restored (``engine.deferred``)."""
        return sum(len(e.deferred) for e in self.engines.values() if e.deferred is not None)

    def restore_deferred(self, limit: int) -> int:
        """Restores up to ``limit`` waiting buckets of owned partitions; returns how many."""
        done = 0
        for engine in self.engines.values():
            waiting = engine.deferred
            if waiting is not None and done < limit:
                done += waiting.restore_some(limit - done)
            if waiting is not None and not waiting:
                engine.deferred = None  # all restored: the evaluation path skips the look-up
        return done

    def drop_partition(self, partition: int) -> None:
        """Stops evaluating ``partition`` (lost or handed over): its engine is dropped."""
        self.engines.pop(partition, None)

    # --- work ---

    def process_raw(
        self,
        partition: int,
        batch: Sequence[events.Event],
        now: float,
        *,
        processed_elsewhere: Collection[str] = (),
    ) -> list[Outcome]:
        """Takes up raw events of ``partition`` (their resource ids hash to it).

        Args:
            partition: The partition.
            batch: Its raw events.
            now: Wall time.
            processed_elsewhere: Leaders another replica processed (committed), whose followers
                in the batch are taken up at once.

        Returns:
            Its outcome first, then those of partitions whose held followers the batch's events
            released (a ``follows`` across resources in different partitions).
        """
        self._elsewhere = processed_elsewhere
        try:
            step = self.engines[partition].process(batch, now)
            return self._with_releases(partition, step, now)
        finally:
            self._elsewhere = ()

    def awaited_leaders(self, now: float) -> list[str]:
        """Leaders that followers held in owned partitions wait for, unknown to all of them."""
        awaited = {x for e in self.engines.values() for x in e.ordering.awaited()}
        return sorted(leader for leader in awaited if not self.knows(leader, now))

    def knows(self, event_id: str, now: float) -> bool:
        """Whether an owned partition processed ``event_id`` or holds it as a follower.

        (A partition holding it releases the event's own followers when it processes it.)
        """
        return self.seen(event_id, now) or any(
            event_id in e.ordering.held for e in self.engines.values()
        )

    def release_followers(self, leaders: Collection[str], now: float) -> list[Outcome]:
        """Takes up the followers owned partitions hold for ``leaders``, processed elsewhere.

        For leaders another replica committed (found in the event log): their followers are
        processed in every owned partition, and so are those followers' own followers.
        """
        self._elsewhere = leaders
        try:
            return self._releases([(None, list(leaders))], now)
        finally:
            self._elsewhere = ()

    def process_forwarded(
        self, partition: int, batch: Sequence[events.Event], now: float
    ) -> Outcome:
        """Takes up events other partitions forwarded to ``partition``."""
        engine = self.engines[partition]
        matcher = _routed(engine)
        matcher.forwarding = False
        try:
            step = engine.process(batch, now)
        finally:
            matcher.forwarding = True
        return Outcome(partition, step, {})

    def advance(self, now: float) -> list[Outcome]:
        """Does what is due by ``now`` in every owned partition (lost followers may forward)."""
        out: list[Outcome] = []
        for partition, engine in sorted(self.engines.items()):
            out.extend(self._with_releases(partition, engine.advance(now), now))
        return out

    def next_due(self) -> float | None:
        """The earliest time any owned partition has work."""
        dues = [d for d in (e.next_due() for e in self.engines.values()) if d is not None]
        return min(dues) if dues else None

    def _with_releases(self, partition: int, step: state.Step, now: float) -> list[Outcome]:
        """``partition``'s outcome, then the followers its evaluated events released elsewhere."""
        forwards, evaluated = _routed(self.engines[partition]).take_forwards()
        return [Outcome(partition, step, forwards), *self._releases([(partition, evaluated)], now)]

    def _releases(self, queue: list[tuple[int | None, list[str]]], now: float) -> list[Outcome]:
        """The outcomes of the followers each ``(source partition, leaders)`` releases, in turn.

        A released follower's own followers in other partitions are released after it.
        """
        out: list[Outcome] = []
        while queue:
            source, leaders = queue.pop(0)
            if not leaders:
                continue
            for other, engine in sorted(self.engines.items()):
                if other == source:
                    continue
                waited = engine.ordering.waiting_for(leaders)
                if waited:
                    released = engine.process((), now, released=waited)
                    forwards, evaluated = _routed(engine).take_forwards()
                    out.append(Outcome(other, released, forwards))
                    queue.append((other, evaluated))
        return out

    def seen(self, event_id: str, now: float) -> bool:
        """Whether an owned partition processed ``event_id`` (remembered as a leader)."""
        return any(e.ordering.has_been_seen(event_id, now) for e in self.engines.values())

    def holds_followers(self) -> bool:
        """Whether an owned partition holds followers (waiting for their leaders)."""
        return any(e.ordering.awaited() for e in self.engines.values())

    def _seen_in_another_partition(self, event_id: str, now: float) -> bool:
        return event_id in self._elsewhere or self.seen(event_id, now)


def _merge_clock(clock: EventClock, before: tuple[float | None, float | None]) -> None:
    """Keeps the later of the replica's clock before a restore and the partition's restored one.

    Both parts of Prefect's event clock only move forward, so the merge is their maximum.
    """
    for attr, old in zip(("clock", "updated"), before, strict=True):
        new = getattr(clock, attr)
        if old is not None and (new is None or old > new):
            setattr(clock, attr, old)


def _routed(engine: TriggerEngine) -> RoutedMatcher:
    matcher = engine.matcher
    assert isinstance(matcher, RoutedMatcher)
    return matcher


def _automation_of(record: state.RecordLike) -> str:
    automation_id: str = (
        record.automation_id if isinstance(record, state.StateRecord) else record[0]
    )
    return automation_id
