"""The engine backend: what the single writer runs, wired to the store and the trigger engine.

Every method that writes runs on the writer thread (``writer.Writer``), inside one transaction:
for an event group, the event log append, the trigger engine's evaluation, its state changes and the
firings are committed together; if the commit fails, in-memory engine state is rebuilt from the
database (``recover``) so memory never runs ahead of what is on disk.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import gc
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from automations import config, metrics
from automations.actions import checks, lifecycle, outcomes, planning, settling
from automations.domain import automations, errors, events, firings, invocations, triggers
from automations.domain import prefect_json as pj
from automations.engine import state as engine_state
from automations.engine import trigger_engine
from automations.pipeline import writer
from automations.store import (
    automations_repo,
    event_log,
    firings_repo,
    outbox_repo,
    state_repo,
)
from automations.store import database as database_

logger = logging.getLogger(__name__)

T = TypeVar("T")

PURGE_INTERVAL = 60.0
"""Seconds between two event-log retention purges."""
PURGE_CHUNK = 50_000
"""Most events deleted by one purge transaction (keeps the writer responsive)."""
GAUGE_INTERVAL = 1.0
"""Seconds between two updates of the engine's size gauges (buckets, deadlines)."""
MAX_REMEMBERED_DEPTHS = 100_000
"""Chain depths of automation-made events remembered for the loop guard (oldest forgotten)."""


def _new_matcher() -> Any:
    from automations.engine.rete import runtime

    return runtime.ReteMatcher()


class EngineBackend(writer.Backend):
    """Store + trigger engine behind the single writer.

    Args:
        database: The database (already migrated).
        engine_factory: Builds a fresh TriggerEngine (used at start and on recovery).
        retention_seconds: How long the event log keeps events.
        clock: Wall clock, seconds since the epoch.
        max_chain_depth: The loop guard (``actions.planning``).
        invocation_lease: Seconds an invocation handed to the dispatcher stays leased.
    """

    def __init__(
        self,
        database: database_.Database,
        *,
        engine_factory: Callable[[], trigger_engine.TriggerEngine],
        retention_seconds: float = 7 * 86400,
        clock: Callable[[], float] = time.time,
        max_chain_depth: int = planning.DEFAULT_MAX_CHAIN_DEPTH,
        invocation_lease: float = outbox_repo.DEFAULT_LEASE,
    ) -> None:
        self.database = database
        self._engine_factory = engine_factory
        self._engine = engine_factory()
        self._retention = retention_seconds
        self._clock = clock
        self._next_purge = clock() + PURGE_INTERVAL
        self._next_gauges = 0.0
        self._loaded: set[str] = set()
        self._automations: dict[str, automations.Automation] = {}
        self._max_chain_depth = max_chain_depth
        self._lease = invocation_lease
        self._depths: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._jobs: list[planning.Job] = []
        self._handoff: Callable[[list[planning.Job]], None] | None = None
        self._capacity: Callable[[], int] = lambda: 0

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

    @classmethod
    def from_settings(cls, settings: config.Settings) -> EngineBackend:
        """Opens (and migrates) the configured database and builds the engine on the rete matcher."""
        database = database_.Database(
            settings.database_url,
            sqlite_synchronous=settings.sqlite_synchronous,
            sqlite_wal_autocheckpoint=settings.sqlite_wal_autocheckpoint,
        )
        database.migrate()
        database.start_background_checkpoints(settings.sqlite_checkpoint_pages)
        return cls(
            database,
            engine_factory=lambda: trigger_engine.TriggerEngine(_new_matcher()),
            retention_seconds=settings.event_retention_seconds,
            max_chain_depth=settings.max_chain_depth,
            invocation_lease=settings.action_timeout_seconds * 2 + 30.0,
        )

    @property
    def database_description(self) -> str:
        """The database URL with any password hidden."""
        return self.database.url.render_as_string(hide_password=True)

    # ------------------------------------------------------------------------ writer thread

    def start(self) -> None:
        """Loads every enabled automation and all persisted engine state."""
        self._engine = self._engine_factory()
        self._loaded.clear()
        # The whole state table is streamed from one sequential scan into the engine, which
        # dispatches each row to its automation: no list of every row, no per-row record object,
        # no random row reads through the key index. Cyclic GC is off meanwhile: its collections
        # kept rescanning the millions of objects being built. Measured through the server:
        # 1,000,000 proactive buckets reload in 6.3 s (1M keys x 2 automations: 18 s -> 11 s).
        collecting = gc.isenabled()
        gc.disable()
        try:
            with self.database.read() as conn:
                enabled = automations_repo.list_enabled(conn)
                self._engine.restore_global(state_repo.iter_raw(conn, ""))
                counted = self._engine.load_automations(
                    enabled, state_repo.iter_all_raw(conn), now=self._clock()
                )
        finally:
            if collecting:
                gc.enable()
        self._loaded.update(automation.id for automation in enabled)
        self._automations = {automation.id: automation for automation in enabled}
        metrics.LOADED_AUTOMATIONS.set(len(self._loaded))
        logger.info(
            "engine loaded", extra={"automations": len(self._loaded), "state_records": counted}
        )

    def recover(self) -> None:
        """Throws away in-memory engine state and reloads it from the database."""
        logger.warning("reloading engine state from the database")
        self.start()

    def commit_events(
        self, batch: Sequence[events.Event], now: float, *, prepared: Sequence[Any] | None = None
    ) -> list[bool]:
        """Appends, evaluates and commits one group of events; returns new(True)/duplicate.

        ``prepared``: the events' ``event_log.to_row`` rows when the caller encoded them already.
        """
        with self._write() as conn:
            flags = event_log.append(conn, batch, rows=prepared)
            fresh = batch if all(flags) else [e for e, new in zip(batch, flags, strict=True) if new]
            if fresh:
                start = time.perf_counter()
                step = self._engine.process(fresh, now)
                metrics.EVALUATION_LATENCY.observe(time.perf_counter() - start)
                self._apply(conn, step, now)
        metrics.COMMIT_EVENTS.observe(len(batch))
        self._update_gauges(now)
        return flags

    def next_due(self) -> float | None:
        """The earliest of the engine's next deadline and the next retention purge."""
        due = self._engine.next_due()
        return self._next_purge if due is None else min(due, self._next_purge)

    def advance(self, now: float) -> None:
        """Fires due deadlines and purges old events."""
        due = self._engine.next_due()
        if due is not None and due <= now:
            with self._write() as conn:
                step = self._engine.advance(now)
                self._apply(conn, step, now)
            metrics.DEADLINE_LAG.observe(max(0.0, self._clock() - due))
            self._update_gauges(now)
        if now >= self._next_purge:
            with self.database.write() as conn:
                removed = event_log.purge(conn, now - self._retention, limit=PURGE_CHUNK)
                # firing history and finished invocations age out with the events they came
                # from; dead-lettered invocations stay until redriven
                firings_removed = firings_repo.purge(conn, now - self._retention)
                invocations_removed = outbox_repo.purge(conn, now - self._retention)
            self._next_purge = now + (1.0 if removed >= PURGE_CHUNK else PURGE_INTERVAL)
            if removed or firings_removed or invocations_removed:
                logger.info(
                    "purged old records",
                    extra={
                        "events": removed,
                        "firings": firings_removed,
                        "invocations": invocations_removed,
                    },
                )

    def run_call(self, fn: Callable[[Any], T]) -> T:
        """Runs ``fn(self)``."""
        return fn(self)

    def close(self) -> None:
        """Nothing to release on the writer thread (the database is disposed by ``dispose``)."""

    def dispose(self) -> None:
        """Closes every database connection."""
        self.database.dispose()

    @contextlib.contextmanager
    def _write(self) -> Iterator[Any]:
        """A write transaction; the invocations it plans go to the dispatcher once committed."""
        self._jobs = []
        with self.database.write() as conn:
            yield conn
        jobs, self._jobs = self._jobs, []
        if jobs and self._handoff is not None:
            self._handoff(jobs)

    def _apply(self, conn: Any, step: engine_state.Step, now: float) -> None:
        """Persists an engine step and plans its firings' actions and lifecycle events.

        The lifecycle events go back into the engine until nothing more fires (bounded by the
        loop guard).
        """
        while True:
            self._persist(conn, step)
            if not step.firings:
                return
            fresh = self._plan(conn, step.firings, now)
            if not fresh:
                return
            step = self._engine.process(fresh, now)

    def _plan(self, conn: Any, fired: Sequence[firings.Firing], now: float) -> list[events.Event]:
        """Writes the firings' invocations; returns their lifecycle events, appended to the log."""
        plan = planning.Plan()
        budget = self._capacity() if self._handoff is not None else 0
        for firing in fired:
            automation = self._automations.get(firing.automation_id)
            if automation is None:
                continue
            trigger_event = firing.triggering_event
            depth = 0 if trigger_event is None else self._depths.get(trigger_event.id, 0)
            wanted = len(automation.actions) + len(automation.actions_on_trigger)
            dispatch_now = budget >= wanted
            if dispatch_now:
                budget -= wanted
            planning.plan_firing(
                automation,
                firing,
                depth=depth,
                now=now,
                lease=self._lease,
                max_depth=self._max_chain_depth,
                dispatch_now=dispatch_now,
                into=plan,
            )
        for firing in plan.capped:
            metrics.CHAINS_CUT.inc()
            logger.warning(
                "automation chain cut by the loop guard",
                extra={"automation_id": firing.automation_id, "firing_id": firing.id},
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

    def _publish(
        self, conn: Any, derived: Sequence[tuple[events.Event, int]]
    ) -> list[events.Event]:
        """Appends automation-made events (with their chain depth) to the log; returns the new."""
        if not derived:
            return []
        items = [event for event, _ in derived]
        flags = event_log.append(conn, items)
        fresh: list[events.Event] = []
        for (event, depth), new in zip(derived, flags, strict=True):
            if not new:
                continue
            fresh.append(event)
            self._depths[event.id] = depth
        while len(self._depths) > MAX_REMEMBERED_DEPTHS:
            self._depths.popitem(last=False)
        return fresh

    def _feed(self, conn: Any, derived: Sequence[tuple[events.Event, int]], now: float) -> None:
        """Publishes automation-made events and evaluates them in this transaction."""
        fresh = self._publish(conn, derived)
        if fresh:
            self._apply(conn, self._engine.process(fresh, now), now)

    def _update_gauges(self, now: float) -> None:
        if now >= self._next_gauges:
            self._next_gauges = now + GAUGE_INTERVAL
            metrics.LIVE_BUCKETS.set(self._engine.live_buckets())
            metrics.OPEN_DEADLINES.set(self._engine.scheduled_deadlines())

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

    # --------------------------------------------------------------- automation changes (writer)

    def create_automation(self, automation: automations.Automation) -> automations.Automation:
        """Stores a new automation, loads it when enabled, publishes ``automation.created``."""
        checks.check_automation(automation)
        with self._write() as conn:
            automations_repo.create(conn, automation)
            if automation.enabled:
                self._load(automation)
            self._changed(conn, "created", automation, depth=0)
        metrics.LOADED_AUTOMATIONS.set(len(self._loaded))
        return automation

    def update_automation(self, automation: automations.Automation) -> automations.Automation:
        """Stores a new definition; unchanged triggers keep their state, changed ones reset."""
        checks.check_automation(automation)
        with self._write() as conn:
            stored = automations_repo.update(conn, automation)
            keep = {t.id for t in _all_triggers(stored)}
            state_repo.delete_stale_triggers(conn, stored.id, keep)
            if stored.enabled:
                # triggers whose id did not change keep their in-memory state
                self._load(stored)
            else:
                self._unload(stored.id)
            self._changed(conn, "updated", stored, depth=0)
        metrics.LOADED_AUTOMATIONS.set(len(self._loaded))
        return stored

    def delete_automation(self, automation_id: str, *, etag: str | None = None) -> None:
        """Deletes an automation, its state and unloads it; publishes ``automation.deleted``."""
        with self._write() as conn:
            current = automations_repo.get(conn, automation_id)
            if etag is not None and str(current.version) != etag:
                raise errors.Aborted(f"etag {etag!r} is stale")
            automations_repo.delete(conn, automation_id)
            state_repo.delete_automation(conn, automation_id)
            self._unload(automation_id)
            self._changed(conn, "deleted", current, depth=0)
        metrics.LOADED_AUTOMATIONS.set(len(self._loaded))

    def set_enabled(self, automation_id: str, enabled: bool, now: float) -> automations.Automation:
        """Enables (loads) or disables (unloads, dropping trigger state) an automation."""
        with self._write() as conn:
            stored = self._set_enabled(conn, automation_id, enabled, now, depth=0)
        metrics.LOADED_AUTOMATIONS.set(len(self._loaded))
        return stored

    def _set_enabled(
        self, conn: Any, automation_id: str, enabled: bool, now: float, *, depth: int
    ) -> automations.Automation:
        before = automations_repo.get(conn, automation_id)
        if enabled and not before.enabled:
            checks.check_automation(dataclasses.replace(before, enabled=True))
        stored = automations_repo.set_enabled(conn, automation_id, enabled, updated=now)
        if enabled and stored.id not in self._loaded:
            self._load(stored)
        elif not enabled:
            state_repo.delete_automation(conn, automation_id)
            self._unload(automation_id)
        if before.enabled != enabled:
            self._changed(conn, "updated", stored, depth=depth)
        return stored

    def _load(self, automation: automations.Automation) -> None:
        self._engine.load_automation(automation, (), now=self._clock())
        self._loaded.add(automation.id)
        self._automations[automation.id] = automation

    def _unload(self, automation_id: str) -> None:
        self._engine.unload_automation(automation_id)
        self._loaded.discard(automation_id)
        self._automations.pop(automation_id, None)

    def _changed(
        self, conn: Any, kind: str, automation: automations.Automation, *, depth: int
    ) -> None:
        """Publishes ``prefect.automation.<kind>`` (payload: the automation) and evaluates it."""
        now = self._clock()
        event = lifecycle.automation_changed(kind, pj.dump_automation(automation), now=now)
        self._feed(conn, [(event, depth)], now)

    # ------------------------------------------------------------------ the outbox (writer)

    def record_outcomes(self, results: Sequence[outcomes.Outcome]) -> None:
        """Records the dispatcher's outcomes in one transaction.

        Internal actions' effects are applied and ``action.executed`` / ``.failed`` (and emitted
        events) published in the same transaction. An outcome whose claim is no longer current
        (its lease ended and the invocation was claimed again) is dropped: the newer attempt
        records its own.
        """
        with self._write() as conn:
            now = self._clock()
            current = outbox_repo.running_attempts(
                conn, [outcome.job.invocation.id for outcome in results]
            )
            finishes: list[invocations.Finish] = []
            derived: list[tuple[events.Event, int]] = []
            for outcome in results:
                invocation = outcome.job.invocation
                if current.pop(invocation.id, None) != invocation.attempts:
                    continue
                finish, made = settling.settle(
                    outcome,
                    now=now,
                    set_enabled=lambda target, enabled, depth: self._set_enabled(
                        conn, target, enabled, now, depth=depth
                    ),
                )
                finishes.append(finish)
                derived.extend(made)
            outbox_repo.finish_many(conn, finishes, now=now)
            self._feed(conn, derived, now)

    def claim_jobs(self, limit: int) -> list[planning.Job]:
        """Claims due invocations and loads their firings (for the dispatcher's poller)."""
        now = self._clock()
        with self.database.write() as conn:
            claimed = outbox_repo.claim_due(conn, now, limit, lease=self._lease)
            by_id = firings_repo.get_many(conn, {i.firing_id for i in claimed})
        return [planning.Job(invocation, by_id.get(invocation.firing_id)) for invocation in claimed]

    def release_running(self) -> int:
        """Makes the previous run's in-flight invocations due now."""
        with self.database.write() as conn:
            return outbox_repo.release_running(conn, self._clock())

    def redrive(self, invocation_id: str) -> invocations.Invocation:
        """Puts a failed or dead-lettered invocation back to pending, due now.

        Raises:
            errors.NotFound: Unknown invocation.
            errors.FailedPrecondition: It is neither failed nor dead-lettered.
        """
        with self.database.write() as conn:
            current = outbox_repo.get(conn, invocation_id)
            if current.status not in (
                invocations.InvocationStatus.FAILED,
                invocations.InvocationStatus.DEAD_LETTER,
            ):
                raise errors.FailedPrecondition(
                    f"invocation {invocation_id!r} is {current.status}; only failed or "
                    "dead-lettered invocations can be redriven",
                    reason="INVOCATION_NOT_REDRIVABLE",
                )
            outbox_repo.redrive(
                conn,
                now=self._clock(),
                ids=[invocation_id],
                statuses=(
                    invocations.InvocationStatus.FAILED,
                    invocations.InvocationStatus.DEAD_LETTER,
                ),
            )
            return outbox_repo.get(conn, invocation_id)

    # ---------------------------------------------------------------- reads (any worker thread)

    def get_automation(self, automation_id: str) -> automations.Automation:
        """Returns one automation or raises NotFound."""
        with self.database.read() as conn:
            return automations_repo.get(conn, automation_id)

    def list_automations(
        self, *, page_size: int, page_token: str
    ) -> tuple[list[automations.Automation], str]:
        """A page of automations by creation order."""
        with self.database.read() as conn:
            return automations_repo.list_page(conn, page_size=page_size, page_token=page_token)

    def list_firings(
        self, *, automation_id: str | None, page_size: int, page_token: str
    ) -> tuple[list[firings.Firing], str]:
        """A page of firings, newest first."""
        with self.database.read() as conn:
            return firings_repo.list_page(
                conn, automation_id=automation_id, page_size=page_size, page_token=page_token
            )

    def list_events(self, **filters: Any) -> tuple[list[events.Event], str]:
        """A page of the event log (see ``store.event_log.list_events``)."""
        with self.database.read() as conn:
            return event_log.list_events(conn, **filters)

    def list_invocations(
        self,
        *,
        automation_id: str | None,
        statuses: Sequence[str] | None,
        page_size: int,
        page_token: str,
    ) -> tuple[list[invocations.Invocation], str]:
        """A page of action invocations, oldest first."""
        with self.database.read() as conn:
            return outbox_repo.list_page(
                conn,
                automation_id=automation_id,
                status=list(statuses) if statuses else None,
                page_size=page_size,
                page_token=page_token,
            )

    def outbox_stats(self) -> outbox_repo.Stats:
        """The outbox's open work (read side)."""
        with self.database.read() as conn:
            return outbox_repo.stats(conn)


def _all_triggers(automation: automations.Automation) -> list[triggers.Trigger]:
    return triggers.iter_triggers(automation.trigger)


def _to_record(row: Any) -> engine_state.StateRecord:
    if isinstance(row, engine_state.StateRecord):
        return row
    return engine_state.StateRecord(
        automation_id=row.automation_id,
        trigger_id=row.trigger_id,
        kind=row.kind,
        key=row.key,
        data=row.data,
        due=row.due,
    )
