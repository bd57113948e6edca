"""The engine backend: what the single writer runs, wired to the store and the trigger engine.

Every method runs on the writer thread (``writer.Writer``), each in one transaction. For an event
group: the event log append, the trigger engine's evaluation, its state changes, the firings and
everything they set off (``pipeline.cascade``) are committed together; if the commit fails,
in-memory engine state is rebuilt from the database (:meth:`EngineBackend.recover`) so memory
never runs ahead of what is on disk. Between groups, the writer calls :meth:`EngineBackend.advance`
when a deadline is due: proactive windows, lost followers and the retention purge.

The other jobs of the writer have homes of their own, reached as attributes:
``changes`` (``pipeline.automation_changes``), ``outbox`` (``pipeline.outbox_recording``) and
``webhooks`` (``pipeline.webhook_changes``). The
read side is ``pipeline.queries``, which does not go through the writer.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import sqlalchemy as sa

from automations import config, metrics
from automations.actions import planning
from automations.domain import events, metric_json
from automations.engine import ordering as ordering_
from automations.engine import trigger_engine
from automations.pipeline import (
    automation_changes,
    cascade,
    outbox_recording,
    webhook_changes,
    writer,
)
from automations.store import (
    automations_repo,
    engine_lock,
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


def rete_engine() -> trigger_engine.TriggerEngine:
    """A trigger engine on the rete matcher (durable_rules' C core, imported on first use).

    durable_rules runs in a worker process of the matcher's, replaced when automation churn has
    left enough abandoned rulesets in it (``docs/design/rete.md``).
    """
    from automations.engine.rete import runtime

    return trigger_engine.TriggerEngine(runtime.ReteMatcher(isolate=True))


class EngineBackend(writer.Backend):
    """Store + trigger engine behind the single writer.

    Args:
        database: The database (already migrated).
        engine_factory: Builds a fresh TriggerEngine (used at start and on recovery).
        retention_seconds: How long the event log keeps events.
        clock: Wall clock, seconds since the epoch.
        max_chain_depth: The loop guard (``actions.planning``).
        max_cascade_firings: The loop guard's budget per causal tree (``pipeline.cascade``).
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
        max_cascade_firings: int = cascade.DEFAULT_MAX_CASCADE_FIRINGS,
        invocation_lease: float = outbox_repo.DEFAULT_LEASE,
    ) -> None:
        self.database = database
        self._engine_factory = engine_factory
        self._retention = retention_seconds
        self._clock = clock
        self._next_purge = clock() + PURGE_INTERVAL
        self._next_gauges = 0.0
        self.cascade = cascade.Cascade(
            engine_factory(),
            max_chain_depth=max_chain_depth,
            max_cascade_firings=max_cascade_firings,
            lease=invocation_lease,
        )
        """The engine, its loaded automations, and what their firings set off."""
        self.changes = automation_changes.AutomationChanges(database, self.cascade, clock=clock)
        """Automation create / update / delete / enable / disable."""
        self.outbox = outbox_recording.OutboxRecorder(
            database, self.cascade, self.changes, clock=clock
        )
        """Recording outcomes, claiming due invocations, release and redrive."""
        self.webhooks = webhook_changes.WebhookChanges.single_node(database, self.cascade)
        """Webhook create / update / delete."""

    @classmethod
    def from_settings(cls, settings: config.Settings) -> EngineBackend:
        """Opens (and migrates) the configured database and builds the engine on the rete matcher.

        Also applies ``metric_minimum_seconds``: the smallest metric ``range`` and ``firing_for``
        accepted on create and update (``domain.metric_json``).
        """
        metric_json.minimum_seconds = settings.metric_minimum_seconds
        database = database_.Database(
            settings.database_url,
            sqlite_synchronous=settings.sqlite_synchronous,
            sqlite_wal_autocheckpoint=settings.sqlite_wal_autocheckpoint,
        )
        holder = engine_lock.holder_description(settings.grpc_addr)
        try:
            lock = engine_lock.acquire(database, holder=holder)  # one engine per database
        except BaseException:
            database.dispose()
            raise
        database.on_dispose(lock.release)
        database.migrate()
        database.check_writable()
        database.start_background_checkpoints(settings.sqlite_checkpoint_pages)
        return cls(
            database,
            engine_factory=rete_engine,
            retention_seconds=settings.event_retention_seconds,
            max_chain_depth=settings.max_chain_depth,
            max_cascade_firings=settings.max_cascade_firings,
            invocation_lease=settings.action_timeout_seconds * 2 + 30.0,
        )

    @property
    def database_description(self) -> str:
        """The database URL with any password hidden."""
        return self.database.url.render_as_string(hide_password=True)

    def attach_dispatcher(
        self, handoff: Callable[[list[planning.Job]], None], capacity: Callable[[], int]
    ) -> None:
        """Connects the dispatcher (see ``Cascade.attach_dispatcher``)."""
        self.cascade.attach_dispatcher(handoff, capacity)

    # ------------------------------------------------------------------------ writer thread

    def start(self) -> None:
        """Loads every enabled automation and all persisted engine state."""
        engine = self._engine_factory()
        self._record_processed_ids_in_the_log(engine)
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
                engine.restore_global(state_repo.iter_raw(conn, ""))
                counted = engine.load_automations(
                    enabled, state_repo.iter_all_raw(conn), now=self._clock()
                )
        finally:
            if collecting:
                gc.enable()
        self.cascade.engine.matcher.close()
        self.cascade.engine = engine
        self.cascade.automations = {automation.id: automation for automation in enabled}
        metrics.LOADED_AUTOMATIONS.set(len(enabled))
        self.database.hold_write_connection()  # this is the writer thread
        logger.info("engine loaded", extra={"automations": len(enabled), "state_records": counted})

    def _record_processed_ids_in_the_log(self, engine: trigger_engine.TriggerEngine) -> None:
        """Lets the event log say which ids were processed, instead of a ``seen`` record per commit.

        Every event this engine appends is taken up in the transaction that appends it: it is
        processed then, unless it is a ``prefect.log.write`` (never processed) or a follower
        held for its leader (the held ones are in the engine's memory and state). So an id the
        engine does not remember (after a restart, or forgotten past ``max_seen``) was processed
        if the log holds it, under another name than ``prefect.log.write``, received within the
        seen window, and it is not held (the retention purge keeps what was received within that
        window, whatever its ``occurred``). Duplicates are refused by the log's primary key. The
        ``seen`` record each commit wrote instead (an upsert into ``engine_state``: three B-tree
        pages, then a delete once expired) was ~17 % of a small group commit's CPU. Records that
        an earlier version wrote are still restored, and deleted once expired.
        """
        engine.persist_seen = False
        ordering = engine.ordering
        cascade_ = self.cascade

        def processed(event_id: str, now: float) -> bool:
            conn = cascade_.connection
            if conn is None or event_id in ordering.held:
                return False
            found = event_log.name_and_received(conn, event_id)
            return (
                found is not None
                and found[0] != ordering_.LOG_WRITE
                and found[1] + ordering.seen_ttl > now
            )

        ordering.leader_seen = processed

    def recover(self) -> None:
        """Throws away in-memory engine state and reloads it from the database."""
        logger.warning("reloading engine state from the database")
        self.start()

    def is_unavailable(self, exc: BaseException) -> bool:
        """A database that cannot be written (full disk, lost connection) fails every commit."""
        return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | OSError)

    def commit_events(
        self,
        batch: Sequence[events.Event],
        now: float,
        *,
        prepared: Sequence[event_log.Row] | None = None,
    ) -> list[bool]:
        """Appends, evaluates and commits one group of events; returns new(True)/duplicate.

        ``prepared``: the events' ``event_log.to_row`` rows when the caller encoded them already.
        """
        with self.cascade.transaction(self.database, defer=True) as conn:
            flags = event_log.append(conn, batch, rows=prepared)
            fresh = batch if all(flags) else [e for e, new in zip(batch, flags, strict=True) if new]
            if fresh:
                start = time.perf_counter()
                step = self.cascade.engine.process(fresh, now)
                metrics.EVALUATION_LATENCY.observe(time.perf_counter() - start)
                self.cascade.run(conn, step, now)
        metrics.COMMIT_EVENTS.observe(len(batch))
        self._update_gauges(now)
        return flags

    def answered(self) -> None:
        """Hands the invocations of the events just committed to the dispatcher."""
        self.cascade.hand_off()

    def next_due(self) -> float | None:
        """The earliest of the engine's next deadline and the next retention purge."""
        due = self.cascade.engine.next_due()
        return self._next_purge if due is None else min(due, self._next_purge)

    def advance(self, now: float) -> None:
        """Fires due deadlines and purges old records."""
        engine = self.cascade.engine
        due = engine.next_due()
        if due is not None and due <= now:
            with self.cascade.transaction(self.database) as conn:
                self.cascade.run(conn, engine.advance(now), now)
            metrics.DEADLINE_LAG.observe(max(0.0, self._clock() - due))
            self._update_gauges(now)
        if now >= self._next_purge:
            self._purge(now)

    def run_call(self, fn: Callable[[EngineBackend], T]) -> T:
        """Runs ``fn(self)``."""
        return fn(self)

    def close(self) -> None:
        """Stops the matcher's worker process (the database is disposed by ``dispose``)."""
        self.database.release_write_connection()
        self.cascade.engine.matcher.close()

    def dispose(self) -> None:
        """Closes every database connection."""
        self.database.dispose()

    def _purge(self, now: float) -> None:
        """Retention: events, and the firings and finished invocations that came with them."""
        with self.database.write() as conn:
            # kept while they say which ids were processed (``_record_processed_ids_in_the_log``)
            seen_since = now - self.cascade.engine.ordering.seen_ttl
            removed = event_log.purge(
                conn, now - self._retention, limit=PURGE_CHUNK, received_before=seen_since
            )
            # dead-lettered invocations stay until redriven
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

    def _update_gauges(self, now: float) -> None:
        if now >= self._next_gauges:
            self._next_gauges = now + GAUGE_INTERVAL
            metrics.LIVE_BUCKETS.set(self.cascade.engine.live_buckets())
            metrics.OPEN_DEADLINES.set(self.cascade.engine.scheduled_deadlines())
