"""The cascade: an engine step, the firings it made, and everything they set off, in one transaction.

A step of the trigger engine (events processed, or deadlines reached) yields firings and state
changes. :meth:`Cascade.run` persists them and plans each firing (``actions.planning``): its
invocations go to the outbox, and its lifecycle events (``prefect.automation.triggered``,
``...action.triggered``, an instant ``do-nothing``'s ``...action.executed``) are appended to the
event log *and processed by the engine in the same transaction*, since other automations may
watch them. Their firings are planned in turn, and so on until a round fires nothing: the run to
quiescence.

Its bounds are the loop guard's. Every automation-made event knows its place in the causal tree of
the event at its root (``planning.Caused``): its chain depth (0 for a client's event, the depth of
its cause plus one for an event an automation made) and the root's id. A firing caused by an
event at ``max_chain_depth`` publishes nothing (its invocations are written failed with the
reason), so a cascade runs at most ``max_chain_depth + 1`` rounds. And automations fire at most
``max_cascade_firings`` times on automation-made events of one tree, across transactions (the
``action.executed`` events of its invocations join the same tree later): further firings are cut
the same way. Without that budget, one event matched by an automation watching every event
(its own lifecycle events included) became 3^8 firings in eight rounds. The client's event itself
is not counted: the firings it causes directly are bounded by the automations that match it.

The trees' bookkeeping is in memory, for the most recent ``MAX_REMEMBERED_EVENTS`` events and
trees: after a restart, a tree that was running starts a fresh budget.

The cascade also hands the invocations a transaction wrote ``running`` to the dispatcher, once it
has committed (:meth:`Cascade.transaction`).
"""

from __future__ import annotations

import collections
import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from automations import metrics
from automations.actions import planning
from automations.domain import automations, events, firings, invocations
from automations.engine import state as engine_state
from automations.engine import trigger_engine
from automations.store import database as database_
from automations.store import event_log, firings_repo, outbox_repo, state_repo

logger = logging.getLogger(__name__)

MAX_REMEMBERED_EVENTS = 100_000
"""Automation-made events (and causal trees) remembered for the loop guard (oldest forgotten)."""
DEFAULT_MAX_CASCADE_FIRINGS = 1000
"""Firings on automation-made events per causal tree, by default (``max_cascade_firings``)."""


class Cascade:
    """The trigger engine with the automations loaded into it, and what their firings set off.

    Runs on the writer thread only.

    Args:
        engine: The trigger engine (replaced when state is reloaded, see ``EngineBackend.start``).
        max_chain_depth: The loop guard (``actions.planning``).
        max_cascade_firings: Firings on automation-made events per causal tree.
        lease: Seconds an invocation handed straight to the dispatcher stays leased.
    """

    def __init__(
        self,
        engine: trigger_engine.TriggerEngine,
        *,
        max_chain_depth: int = planning.DEFAULT_MAX_CHAIN_DEPTH,
        max_cascade_firings: int = DEFAULT_MAX_CASCADE_FIRINGS,
        lease: float = outbox_repo.DEFAULT_LEASE,
    ) -> None:
        self.engine = engine
        self.automations: dict[str, automations.Automation] = {}
        """The enabled automations loaded into ``engine``, by id."""
        self.max_chain_depth = max_chain_depth
        self.lease = lease
        self._lineage: collections.OrderedDict[str, tuple[int, str]] = collections.OrderedDict()
        self._trees = TreeBudget(max_cascade_firings)
        self._jobs: list[planning.Job] = []
        self._deferred: list[planning.Job] = []
        self._handoff: Callable[[list[planning.Job]], None] | None = None
        self._capacity: Callable[[], int] = lambda: 0
        self.connection: Any = None
        """The connection of the transaction open in :meth:`transaction`, or None between them."""

    def attach_dispatcher(
        self, handoff: Callable[[list[planning.Job]], None], capacity: Callable[[], int]
    ) -> None:
        """Connects the dispatcher.

        Committed invocations are handed to ``handoff`` (called on the writer thread right after
        each commit), as many as ``capacity()`` allows; the others are written ``pending`` for
        its poller.
        """
        self._handoff = handoff
        self._capacity = capacity

    @contextlib.contextmanager
    def transaction(self, database: database_.Database, *, defer: bool = False) -> Iterator[Any]:
        """A write transaction; the invocations it plans go to the dispatcher once committed.

        With ``defer`` they wait for :meth:`hand_off` instead: the writer answers the callers
        whose events the transaction committed first (``Writer``), since the hand-over may wait
        for the event loop (``DispatchSettings.handoff_wait``), and their acknowledgements need
        not wait for their actions to be on their way.
        """
        self._jobs = []
        with database.write() as conn:
            self.connection = conn
            try:
                yield conn
            finally:
                self.connection = None
        jobs, self._jobs = self._jobs, []
        if defer:
            self._deferred.extend(jobs)
        elif jobs and self._handoff is not None:
            self._handoff(jobs)

    def hand_off(self) -> None:
        """Hands the invocations of deferred transactions (``transaction``) to the dispatcher."""
        jobs, self._deferred = self._deferred, []
        if jobs and self._handoff is not None:
            self._handoff(jobs)

    def run(self, conn: Any, step: engine_state.Step, now: float) -> None:
        """Persists an engine step and runs its firings to quiescence (see the module docstring)."""
        while True:
            self._persist(conn, step)
            if not step.firings:
                return
            fresh = self._plan(conn, step.firings, now)
            if not fresh:
                return
            step = self.engine.process(fresh, now)

    def feed(self, conn: Any, derived: Sequence[planning.Caused], now: float) -> None:
        """Publishes automation-made events and runs what they fire."""
        fresh = self._publish(conn, derived)
        if fresh:
            self.run(conn, self.engine.process(fresh, now), now)

    def _plan(self, conn: Any, fired: Sequence[firings.Firing], now: float) -> list[events.Event]:
        """Writes the firings' invocations; returns their lifecycle events, appended to the log."""
        budget = self._capacity() if self._handoff is not None else 0
        plan, _ = plan_fired(
            fired,
            self.automations,
            self._lineage,
            self._trees,
            now=now,
            lease=self.lease,
            max_depth=self.max_chain_depth,
            budget=budget,
        )
        if plan.invocations:
            outbox_repo.add_many(conn, plan.invocations)
            by_id = {firing.id: firing for firing in fired}
            self._jobs.extend(
                planning.Job(invocation, by_id.get(invocation.firing_id))
                for invocation in plan.invocations
                if invocation.status == invocations.InvocationStatus.RUNNING
            )
        return self._publish(conn, plan.events)

    def _publish(self, conn: Any, derived: Sequence[planning.Caused]) -> list[events.Event]:
        """Appends automation-made events to the log; returns the new ones."""
        if not derived:
            return []
        items = [caused.event for caused in derived]
        flags = event_log.append(conn, items)
        fresh: list[events.Event] = []
        lineage = self._lineage
        for caused, new in zip(derived, flags, strict=True):
            if not new:
                continue
            fresh.append(caused.event)
            lineage[caused.event.id] = (caused.depth, caused.origin)
        while len(lineage) > MAX_REMEMBERED_EVENTS:
            lineage.popitem(last=False)
        return fresh

    def _persist(self, conn: Any, step: engine_state.Step) -> None:
        if step.upserts:
            state_repo.upsert_many(conn, step.upserts)
        if step.deletes:
            state_repo.delete_many(conn, step.deletes)
        if step.firings:
            firings_repo.insert_many(conn, step.firings)
            for firing in step.firings:
                metrics.FIRINGS.labels(firing.trigger_type, firing.posture or "").inc()
                logger.info(
                    "automation fired",
                    extra={
                        "automation_id": firing.automation_id,
                        "firing_id": firing.id,
                        "event_id": firing.triggering_event_id,
                    },
                )


class TreeBudget:
    """Firings on automation-made events per causal tree, for the most recently active trees.

    Args:
        max_firings: The budget of one tree (``max_cascade_firings``).
        remembered: How many trees are remembered (the least recently active are forgotten).
    """

    def __init__(self, max_firings: int, remembered: int = MAX_REMEMBERED_EVENTS) -> None:
        self.max_firings = max_firings
        self._remembered = remembered
        self._spent: collections.OrderedDict[str, int] = collections.OrderedDict()

    def spend(self, origin: str) -> str | None:
        """Counts a firing on an automation-made event of ``origin``'s tree; a reason past budget."""
        spent = self._spent.pop(origin, 0) + 1
        self._spent[origin] = spent  # the most recently active trees are kept
        while len(self._spent) > self._remembered:
            self._spent.popitem(last=False)
        if spent > self.max_firings:
            return planning.tree_cut_reason(self.max_firings)
        return None


def plan_fired(
    fired: Sequence[firings.Firing],
    automations_by_id: Mapping[str, automations.Automation],
    lineage: Mapping[str, tuple[int, str]],
    trees: TreeBudget,
    *,
    now: float,
    lease: float,
    max_depth: int,
    budget: int,
) -> tuple[planning.Plan, int]:
    """Plans the invocations and lifecycle events of ``fired`` under the loop guard.

    Args:
        fired: The firings of one round.
        automations_by_id: The loaded automations (a firing of one since deleted plans nothing).
        lineage: Chain depth and origin of the automation-made events that caused firings.
        trees: The firing budget per causal tree.
        now: The time of the commit.
        lease: How long a dispatched invocation's claim lasts.
        max_depth: The chain depth past which nothing is published (``max_chain_depth``).
        budget: How many invocations the dispatcher may still take now; the rest are written
            pending.

    Returns:
        The plan and the dispatcher's budget left.
    """
    plan = planning.Plan()
    for firing in fired:
        automation = automations_by_id.get(firing.automation_id)
        if automation is None:
            continue
        trigger_event = firing.triggering_event
        if trigger_event is None:  # a deadline's firing roots its own tree
            depth, origin = 0, firing.id
        else:
            depth, origin = lineage.get(trigger_event.id) or (0, trigger_event.id)
        cut = trees.spend(origin) if depth > 0 else None
        wanted = len(planning.planned_actions(automation, firing))
        dispatch_now = budget >= wanted
        if dispatch_now:
            budget -= wanted
        planning.plan_firing(
            automation,
            firing,
            depth=depth,
            origin=origin,
            now=now,
            lease=lease,
            max_depth=max_depth,
            cut=cut,
            dispatch_now=dispatch_now,
            into=plan,
        )
    for firing in plan.capped:
        metrics.CHAINS_CUT.inc()
        logger.warning(
            "automation chain cut by the loop guard",
            extra={"automation_id": firing.automation_id, "firing_id": firing.id},
        )
    return plan, budget
