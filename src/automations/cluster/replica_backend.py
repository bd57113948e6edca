"""A replica's writer backend: its partitions' engines, leases and fenced commits, on one thread.

Everything that changes a partition's memory or its row in ``partitions`` runs on the replica's
writer thread (``pipeline.writer``, reused as it is: a queue of calls with deadline wake-ups):

* **ownership**: :meth:`ClusterBackend.acquire` (one short transaction, committed before the
  partition's state is loaded, lazily, see ``engine.deferred``, so the load sees the previous
  owner's last commit; then the invocations that were in flight there are made due again), :meth:`~ClusterBackend.renew` and
  :meth:`~ClusterBackend.release`. Renewals and releases lock partition rows as commits do, so
  running them on the same thread as the commits keeps a replica from deadlocking with itself;
* **commits**: a batch of a partition's raw log entries (:meth:`~ClusterBackend.commit_raw`),
  of its forward log entries (:meth:`~ClusterBackend.commit_fwd`), and the deadlines that came due
  (:meth:`~ClusterBackend.advance`), each in ONE transaction that starts with the fence
  (``fencing.fence``: the offsets, still under this replica's epoch) and holds the event log rows,
  the state, firings, invocations and log messages (``partition_commit.persist``).

A raw batch's events are appended to the event log first (``ON CONFLICT DO NOTHING``: the durable
dedup of client retries and replays) and only the new ones are evaluated. A forward entry whose
(source partition, source sequence) is not above the destination's watermark for that source was
applied already (the relay published it again) and is skipped.

When a commit fails, the engines it touched have run ahead of what is stored: those partitions are
dropped (their engines and leases forgotten here, their readers closed by the replica) and, unless
the fence said another replica owns them now (``OwnershipLost``, counted), acquired again at the
next round, which reloads them from their last commit.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from automations import metrics
from automations.actions import planning
from automations.cluster import (
    cluster_changes,
    cluster_outbox,
    cluster_webhooks,
    crash_points,
    fencing,
    leases,
    log_reader,
    partition_commit,
    partition_store,
    partitioned,
    remote_leaders,
)
from automations.domain import events
from automations.pipeline import writer
from automations.store import database as database_
from automations.store import event_log, firings_repo, outbox_repo

logger = logging.getLogger(__name__)

PURGE_INTERVAL = 60.0
"""Seconds between two retention purges (by the owner of partition 0)."""
LINEAGE_SECONDS = 24 * 3600.0
"""How long the lineage of an automation-made event is kept (the streams keep messages 24 h)."""
GAUGE_INTERVAL = 1.0


@dataclasses.dataclass(slots=True)
class Owned:
    """A partition this replica holds: its epoch and committed input positions."""

    epoch: int
    raw_seq: int
    fwd_seq: int
    watermarks: dict[int, int]


Work = Callable[[Any], list[partitioned.Outcome]]
"""A commit's work after its fence: returns the outcomes to persist."""


class ClusterBackend(writer.Backend):
    """The writer backend of a cluster replica (see the module docstring).

    Args:
        database: The cluster's database (PostgreSQL, migrated).
        member_id: This replica's member id.
        engine: The replica's partitioned engine (its matcher included).
        retention_seconds: How long the event log keeps events.
        max_chain_depth: The loop guard.
        max_cascade_firings: The loop guard's budget per causal tree (per replica).
        invocation_lease: Seconds a claimed invocation stays leased.
        clock: Wall clock, seconds since the epoch.
    """

    def __init__(
        self,
        database: database_.Database,
        member_id: str,
        engine: partitioned.PartitionedEngine,
        *,
        retention_seconds: float = 7 * 86400,
        max_chain_depth: int = planning.DEFAULT_MAX_CHAIN_DEPTH,
        max_cascade_firings: int = 1000,
        invocation_lease: float = outbox_repo.DEFAULT_LEASE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.database = database
        self.member_id = member_id
        self.engine = engine
        self._retention = retention_seconds
        self._clock = clock
        self.owned: dict[int, Owned] = {}
        self.owned_partitions: tuple[int, ...] = ()
        """The owned partitions, sorted (a snapshot other threads may read)."""
        self.changes = cluster_changes.ClusterChanges(
            database, engine, lambda: self.owned_partitions, clock=clock
        )
        """Automation create / update / delete / enable / disable, and the sync."""
        self.outbox = cluster_outbox.ClusterOutbox(
            database,
            self.changes,
            engine.router.partitions,
            lambda: self.owned_partitions,
            lease=invocation_lease,
            clock=clock,
        )
        """Recording outcomes, claiming due invocations, redrive."""
        self.webhooks = cluster_webhooks.changes(database, engine.router.partitions)
        """Webhook create / update / delete (``cluster_webhooks``)."""
        self.planner = partition_commit.Planner(
            engine.automations,
            engine.router.partitions,
            max_chain_depth=max_chain_depth,
            max_cascade_firings=max_cascade_firings,
            lease=invocation_lease,
        )
        self.on_dropped: Callable[[list[int]], None] = lambda partitions: None
        """Called (writer thread) with partitions dropped after a failed commit or renewal."""
        self.on_written: Callable[[partition_commit.Written], None] = lambda written: None
        """Called (writer thread) after each commit that wrote something."""
        self._handoff: Callable[[list[planning.Job]], None] | None = None
        self.leaders = remote_leaders.RemoteLeaders(engine.router.partitions)
        """Leaders other replicas processed, for the followers held here (``follows``)."""
        self._last_leader_poll = 0.0
        self._next_purge = clock() + PURGE_INTERVAL
        self._next_gauges = 0.0
        self._next_restore = 0.0

    def attach_dispatcher(
        self, handoff: Callable[[list[planning.Job]], None], capacity: Callable[[], int]
    ) -> None:
        """Connects the dispatcher: committed ``running`` invocations go to ``handoff``."""
        self._handoff = handoff
        self.planner.capacity = capacity

    # ------------------------------------------------------------------ writer.Backend

    def start(self) -> None:
        """Loads every enabled automation (no partition is owned yet)."""
        loaded = self.changes.load_all()
        logger.info("replica loaded its automations", extra={"automations": loaded})

    def recover(self) -> None:
        """Nothing to rebuild: a failed commit drops the partitions it touched itself."""

    def is_unavailable(self, exc: BaseException) -> bool:
        """A database that cannot be written (lost connection) fails every commit."""
        return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | OSError)

    def close(self) -> None:
        """Stops the matcher's worker process."""
        self.engine.matcher.close()

    def next_due(self) -> float | None:
        """The earliest deadline, leader look-up, purge or background restore step (if any)."""
        due = [self._next_purge]
        if self.engine.deferred_buckets():
            due.append(self._next_restore)
        deadline = self.engine.next_due()
        if deadline is not None:
            due.append(deadline)
        if self.engine.holds_followers():
            due.append(self._last_leader_poll + remote_leaders.POLL_INTERVAL)
        return min(due)

    def advance(self, now: float) -> None:
        """Fires what is due, releases followers of leaders committed elsewhere; purges.

        The deadlines of every owned partition are one fenced transaction, the released
        followers another. Restores a step of deferred buckets (``engine.deferred``) too.
        """
        due = self.engine.next_due()
        if due is not None and due <= now:
            self._commit_outcomes(self.engine.advance(now), now)
            metrics.DEADLINE_LAG.observe(max(0.0, self._clock() - due))
        if now >= self._last_leader_poll + remote_leaders.POLL_INTERVAL:
            self._release_followers(now)
        if now >= self._next_purge:
            self._next_purge = now + PURGE_INTERVAL
            if 0 in self.owned:
                self._purge(now)
        if now >= self._next_restore and self.engine.deferred_buckets():
            self.engine.restore_deferred(partitioned.RESTORE_CHUNK)
            self._next_restore = self._clock() + partitioned.RESTORE_PAUSE
        self._gauges(now)

    def _release_followers(self, now: float) -> None:
        """Processes the held followers whose leaders other replicas committed (and relayed)."""
        self._last_leader_poll = now
        awaited = self.engine.awaited_leaders(now)
        self.leaders.keep_only(set(awaited))
        if not awaited:
            return
        with self.database.read() as conn:
            ready = self.leaders.ready(conn, awaited)
        if ready:
            self._commit_outcomes(self.engine.release_followers(ready, now), now)

    def _commit_outcomes(self, outcomes: list[partitioned.Outcome], now: float) -> None:
        """Commits outcomes made outside any input (deadlines, released followers), if any."""
        changed = [o for o in outcomes if o.changes_something()]
        if changed:
            clock = self.engine.clock.to_data()
            first = [
                fencing.Checkpoint(p, self.owned[p].epoch, clock=clock)
                for p in sorted({o.partition for o in changed})
            ]
            self._commit(first, lambda conn: changed, now)

    # ------------------------------------------------------------------ ownership

    def acquire(
        self, partitions: Collection[int], dead: Iterable[str], lease: float
    ) -> list[leases.Grant]:
        """Acquires the free ones of ``partitions`` and loads each from its last commit."""
        wanted = [p for p in partitions if p not in self.owned]
        if not wanted:
            return []
        with self.database.write() as conn:
            grants = leases.acquire(conn, self.member_id, wanted, dead=dead, lease=lease)
        if grants:
            crash_points.reached("during-takeover")
            self._next_restore = self._clock() + partitioned.RESTORE_DELAY
            try:  # rows of automations not synced yet (created < 1 s ago) would be dropped:
                self.changes.sync(taking=[grant.partition for grant in grants])  # loaded first
            except Exception:
                logger.exception("loading automation changes before a takeover failed")
        for grant in grants:
            started = time.perf_counter()
            with self.database.read() as conn:
                records = list(partition_store.iter_state(conn, grant.partition))
            engine = self.engine.add_partition(
                grant.partition, records, now=self._clock(), lazy=True
            )
            self.owned[grant.partition] = Owned(
                grant.epoch, grant.raw_seq, grant.fwd_seq, dict(grant.watermarks)
            )
            kind = "takeover" if grant.previous_owner not in (None, self.member_id) else "free"
            metrics.CLUSTER_ACQUISITIONS.labels(kind).inc()
            logger.info(
                "partition acquired",
                extra={
                    "partition": grant.partition,
                    "epoch": grant.epoch,
                    "previous_owner": grant.previous_owner,
                    "raw_seq": grant.raw_seq,
                    "fwd_seq": grant.fwd_seq,
                    "records": len(records),
                    "deferred": 0 if engine.deferred is None else len(engine.deferred),
                    "load_seconds": round(time.perf_counter() - started, 4),
                },
            )
        self._owned_changed()
        if grants:
            released = self.outbox.release([g.partition for g in grants])
            if released:
                logger.info("re-queued in-flight invocations", extra={"invocations": released})
        return grants

    def renew(self, lease: float) -> list[int]:
        """Extends the owned partitions' leases; drops (and returns) those taken over."""
        held = {p: owned.epoch for p, owned in self.owned.items()}
        if not held:
            return []
        with self.database.write() as conn:
            kept = leases.renew(conn, self.member_id, held, lease=lease)
        lost = sorted(set(held) - kept)
        if lost:
            logger.warning("partitions taken over by another replica", extra={"partitions": lost})
            self._drop(lost)
        return lost

    def release(self, partitions: Iterable[int]) -> list[int]:
        """Hands partitions over: forgets them here, then ends their leases (graceful)."""
        held = {p: self.owned[p].epoch for p in partitions if p in self.owned}
        if not held:
            return []
        self._drop(sorted(held), notify=False)
        with self.database.write() as conn:
            released = leases.release(conn, self.member_id, held)
        logger.info("partitions released", extra={"partitions": sorted(released)})
        return sorted(released)

    def _drop(self, partitions: Iterable[int], *, notify: bool = True) -> None:
        dropped = [p for p in partitions if self.owned.pop(p, None) is not None]
        for p in dropped:
            self.engine.drop_partition(p)
        if dropped:
            self._owned_changed()
            if notify:
                self.on_dropped(dropped)

    def _owned_changed(self) -> None:
        self.owned_partitions = tuple(sorted(self.owned))
        metrics.CLUSTER_PARTITIONS_OWNED.set(len(self.owned))

    # ------------------------------------------------------------------ commits

    def commit_raw(self, partition: int, entries: Sequence[log_reader.LogEntry]) -> bool:
        """Commits raw log entries of ``partition``: log the new events, evaluate them, persist.

        Returns:
            Whether the partition is still owned (False: dropped, stop reading it).
        """
        owned = self.owned.get(partition)
        if owned is None:
            return False
        entries = [e for e in entries if e.sequence > owned.raw_seq]
        if not entries:
            return True
        batch: list[events.Event] = [event for entry in entries for event in entry.events()]
        last = entries[-1].sequence
        now = self._clock()

        def work(conn: Any) -> list[partitioned.Outcome]:
            flags = event_log.append(conn, batch)
            fresh = [event for event, new in zip(batch, flags, strict=True) if new]
            if not fresh:
                return []
            started = time.perf_counter()
            elsewhere = self._leaders_elsewhere(conn, batch, fresh, now)
            outcomes = self.engine.process_raw(partition, fresh, now, processed_elsewhere=elsewhere)
            metrics.EVALUATION_LATENCY.observe(time.perf_counter() - started)
            return outcomes

        first = [fencing.Checkpoint(partition, owned.epoch, raw_seq=last)]
        if not self._commit(first, work, now, check_changes=True):
            return False
        owned.raw_seq = last
        metrics.COMMIT_EVENTS.observe(len(batch))
        return True

    def _leaders_elsewhere(
        self, conn: Any, batch: Sequence[events.Event], fresh: Sequence[events.Event], now: float
    ) -> set[str]:
        """The leaders of ``fresh`` followers that other replicas committed (and relayed).

        The batch's own ids are left out: this transaction has just logged them, unprocessed.
        """
        leaders = {e.follows for e in fresh if e.follows is not None and e.follows != e.id}
        if not leaders:
            return set()
        leaders.difference_update(e.id for e in batch)
        unknown = [leader for leader in leaders if not self.engine.knows(leader, now)]
        return self.leaders.ready(conn, unknown) if unknown else set()

    def commit_fwd(self, partition: int, entries: Sequence[log_reader.LogEntry]) -> bool:
        """Commits forward log entries of ``partition`` not applied yet (see the watermarks).

        Returns:
            Whether the partition is still owned (False: dropped, stop reading it).
        """
        owned = self.owned.get(partition)
        if owned is None:
            return False
        entries = [e for e in entries if e.sequence > owned.fwd_seq]
        if not entries:
            return True
        marks = dict(owned.watermarks)
        batch: list[events.Event] = []
        for entry in entries:
            source = entry.source
            if source is None:
                logger.warning(
                    "forward entry without a source skipped",
                    extra={"partition": partition, "sequence": entry.sequence},
                )
                continue
            if source.sequence <= marks.get(source.partition, 0):
                continue  # relayed again after a crash or a move: applied already
            marks[source.partition] = source.sequence
            batch.extend(entry.events())
        last = entries[-1].sequence
        now = self._clock()

        def work(conn: Any) -> list[partitioned.Outcome]:
            if not batch:
                return []
            return [self.engine.process_forwarded(partition, batch, now)]

        first = fencing.Checkpoint(partition, owned.epoch, fwd_seq=last, watermarks=marks)
        if not self._commit([first], work, now, check_changes=True):
            return False
        owned.fwd_seq = last
        owned.watermarks = marks
        return True

    def _commit(
        self,
        first: list[fencing.Checkpoint],
        work: Work,
        now: float,
        *,
        check_changes: bool = False,
    ) -> bool:
        """One fenced transaction: ``first``'s fence, ``work``, the outcomes' partitions, persist.

        With ``check_changes`` (a commit of log entries, whose work evaluates them), automation
        changes committed since the last sync are loaded first: the fence reads the change
        counter, and when it moved the transaction is rolled back (nothing was done yet), the
        changes are synced and the commit starts again.

        Returns:
            Whether it committed (False: the touched partitions were dropped).
        """
        touched = {c.partition for c in first}
        try:
            with self.database.write() as conn:
                counted = fencing.fence(conn, self.member_id, first)
                if check_changes and not self.changes.is_current(counted):
                    raise _ChangesToLoad
                outcomes = work(conn)
                more = sorted({o.partition for o in outcomes} - touched)
                touched.update(more)
                clock = self.engine.clock.to_data()
                fencing.fence(
                    conn,
                    self.member_id,
                    [fencing.Checkpoint(p, self.owned[p].epoch, clock=clock) for p in more]
                    + [fencing.Checkpoint(c.partition, c.epoch, clock=clock) for c in first],
                )
                written = partition_commit.persist(conn, outcomes, self.planner, now)
                crash_points.commit_delay()
                crash_points.reached("before-commit")
        except _ChangesToLoad:
            try:
                self.changes.sync()
            except Exception:  # the commit goes on with what is loaded; the periodic sync retries
                logger.exception("loading automation changes before a commit failed")
            return self._commit(first, work, now)
        except fencing.OwnershipLost as lost:
            metrics.CLUSTER_FENCED_COMMITS.inc()
            logger.warning(
                "commit refused by the fence: another replica owns the partition now",
                extra={"partitions": list(lost.partitions), "touched": sorted(touched)},
            )
            self._drop(touched | set(lost.partitions))
            return False
        except Exception:
            logger.exception(
                "partition commit failed; the partitions are reloaded from their last commit",
                extra={"partitions": sorted(touched)},
            )
            self._drop(touched)
            return False
        crash_points.reached("after-commit")
        if written.jobs and self._handoff is not None:
            self._handoff(written.jobs)
        if written.messages or written.firings:
            self.on_written(written)
        return True

    # ------------------------------------------------------------------ housekeeping

    def _purge(self, now: float) -> None:
        """Retention: events, firings, finished invocations and old lineage."""
        try:
            with self.database.write() as conn:
                removed = event_log.purge(conn, now - self._retention, limit=50_000)
                firings_repo.purge(conn, now - self._retention)
                outbox_repo.purge(conn, now - self._retention)
                partition_store.purge_lineage(conn, now - LINEAGE_SECONDS)
        except Exception:
            logger.exception("retention purge failed; tried again later")
            return
        if removed:
            logger.info("purged old records", extra={"events": removed})

    def _gauges(self, now: float) -> None:
        if now >= self._next_gauges:
            self._next_gauges = now + GAUGE_INTERVAL
            engines = list(self.engine.engines.values())
            metrics.LIVE_BUCKETS.set(sum(e.live_buckets() for e in engines))
            metrics.OPEN_DEADLINES.set(sum(e.scheduled_deadlines() for e in engines))


class _ChangesToLoad(Exception):
    """Raised inside a commit whose fence saw automation changes not loaded yet (rolls it back)."""
