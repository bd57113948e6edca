"""Automation changes in cluster mode: the row in PostgreSQL, the event in the outbox, every replica.

A replica serving a create / update / delete / enable / disable writes the ``automations`` row and
the change's lifecycle event (``prefect.automation.created`` ...) in one transaction, the event as a
message for the raw stream (``partition_commit.event_messages``) that the relay publishes and the
owner of its partition evaluates. Once committed, it loads or unloads the automation in its own
partitioned engine.

Every other replica learns of the change by **polling**: :meth:`ClusterChanges.sync`, run every
second on each replica, reads the enabled automations' ids and versions (every change bumps the
version) and loads, reloads or unloads what differs. Each change also increments the cluster's
change counter (``cluster.automations_version``) in its transaction, and a replica reads that
counter in the fence of every partition commit (:meth:`ClusterChanges.is_current`), syncing and
committing again when it moved: an event published after a change returned, through any replica,
is evaluated with it. Polling rather than ``LISTEN/NOTIFY``: a
notification is lost while a replica is disconnected, so a reconciling poll is needed anyway (as
Prefect's own ``reconcile_automations`` next to its change listener), and one mechanism with a
bounded delay (a second) is simpler to reason about; the query reads two columns of a small table.

Trigger state follows the single-node rules: an update keeps the state of triggers whose
definition did not change (their ids are kept) and deletes the others', a delete or disable
deletes all of it. The change's transaction deletes the rows in every partition; a replica that
applies the change later also deletes the rows in its own partitions, which its commits may have
written meanwhile.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from automations import metrics
from automations.actions import checks, lifecycle, planning
from automations.cluster import partition_commit, partition_store, partitioned
from automations.domain import automations, errors, triggers
from automations.domain import prefect_json as pj
from automations.store import automations_repo, tables
from automations.store import database as database_

logger = logging.getLogger(__name__)


class ClusterChanges:
    """Applies automation changes on the replica's writer thread.

    Args:
        database: The cluster's database.
        engine: The replica's partitioned engine.
        owned: The partitions this replica owns now.
        clock: Wall clock, seconds since the epoch.
    """

    def __init__(
        self,
        database: database_.Database,
        engine: partitioned.PartitionedEngine,
        owned: Callable[[], Sequence[int]],
        *,
        clock: Callable[[], float],
    ) -> None:
        self._database = database
        self._engine = engine
        self._owned = owned
        self._clock = clock
        self._after: list[Callable[[], None]] = []
        self._synced = -1
        """The change counter as of the last sync (-1: none yet)."""

    # ------------------------------------------------------------------ transactions

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """A write transaction; engine changes it planned apply once it committed."""
        self._after = []
        with self._database.write() as conn:
            yield conn
        after, self._after = self._after, []
        for apply in after:
            apply()

    # ------------------------------------------------------------------ API changes

    def create(self, automation: automations.Automation) -> automations.Automation:
        """Stores a new automation and publishes ``automation.created``; loads it here."""
        checks.check_automation(automation)
        with self.transaction() as conn:
            automations_repo.create(conn, automation)
            self._changed(conn, "created", automation)
            if automation.enabled:
                self._after.append(lambda: self._load(automation))
        return automation

    def update(self, automation: automations.Automation) -> automations.Automation:
        """Stores a new definition; unchanged triggers keep their state, changed ones reset."""
        checks.check_automation(automation)
        with self.transaction() as conn:
            stored = automations_repo.update(conn, automation)
            keep = [t.id for t in triggers.iter_triggers(stored.trigger)]
            partition_store.delete_automation_state(conn, stored.id, keep_triggers=keep)
            self._changed(conn, "updated", stored)
            self._after.append(lambda: self._apply(stored))
        return stored

    def delete(self, automation_id: str, *, etag: str | None = None) -> None:
        """Deletes an automation and its state; publishes ``automation.deleted``.

        Raises:
            errors.NotFound: No such automation.
            errors.Aborted: ``etag`` is given and stale.
        """
        with self.transaction() as conn:
            current = automations_repo.get(conn, automation_id)
            if etag is not None and str(current.version) != etag:
                raise errors.Aborted(f"etag {etag!r} is stale")
            automations_repo.delete(conn, automation_id)
            partition_store.delete_automation_state(conn, automation_id)
            self._changed(conn, "deleted", current)
            self._after.append(lambda: self._unload(automation_id))

    def set_enabled(self, automation_id: str, enabled: bool, now: float) -> automations.Automation:
        """Enables (loads) or disables (unloads, dropping trigger state) an automation."""
        with self.transaction() as conn:
            return self.set_enabled_in(conn, automation_id, enabled, now)

    def set_enabled_in(
        self,
        conn: Any,
        automation_id: str,
        enabled: bool,
        now: float,
        *,
        depth: int = 0,
        origin: str = "",
    ) -> automations.Automation:
        """:meth:`set_enabled` inside a :meth:`transaction` (a pause- / resume-automation).

        Raises:
            errors.NotFound: No such automation (raised before anything changed).
        """
        before = automations_repo.get(conn, automation_id)
        if enabled and not before.enabled:
            checks.check_automation(dataclasses.replace(before, enabled=True))
        stored = automations_repo.set_enabled(conn, automation_id, enabled, updated=now)
        if not enabled:
            partition_store.delete_automation_state(conn, automation_id)
        if before.enabled != enabled:
            self._changed(conn, "updated", stored, depth=depth, origin=origin)
        self._after.append(lambda: self._apply(stored))
        return stored

    # ------------------------------------------------------------------ other replicas' changes

    def load_all(self) -> int:
        """Loads every enabled automation (at start, before any partition is owned)."""
        with self._database.read() as conn:
            enabled = automations_repo.list_enabled(conn)
        for automation in enabled:
            self._engine.load_automation(automation, now=self._clock())
        self._count()
        return len(enabled)

    def is_current(self, counted: int | None) -> bool:
        """Whether the change counter ``counted`` (read by a commit's fence) is the one synced.

        Every partition commit reads the counter with its fence and, when it moved since the last
        sync, rolls back, syncs and starts again: an automation change committed before an event
        was published (through any replica) is then loaded before the event is evaluated.
        """
        return counted is None or counted == self._synced

    def sync(self, taking: Iterable[int] = ()) -> int:
        """Applies the changes other replicas made since the last sync; returns how many.

        One query of the enabled automations' ids and versions, then the definitions of those
        that are new or changed.

        Args:
            taking: Partitions being taken over, not owned yet: the state rows a change makes
                obsolete are deleted there too, before they are restored.
        """
        t = tables.automations
        with self._database.read() as conn:
            counted = changes_counted(conn)  # first: a change committed after it is seen next time
            stored = {
                row[0]: int(row[1])
                for row in conn.execute(sa.select(t.c.id, t.c.version).where(t.c.enabled))
            }
            loaded = {a.id: a.version for a in self._engine.automations.values()}
            changed = [i for i, version in stored.items() if loaded.get(i) != version]
            fresh: list[automations.Automation] = []
            for automation_id in changed:
                with contextlib.suppress(errors.NotFound):  # deleted meanwhile
                    fresh.append(automations_repo.get(conn, automation_id))
        gone = [i for i in loaded if i not in stored]
        if not fresh and not gone:
            self._synced = counted
            return 0
        owned = sorted({*self._owned(), *taking})
        with self._database.write() as conn:
            for automation in fresh:
                if automation.id in loaded:
                    keep = [t.id for t in triggers.iter_triggers(automation.trigger)]
                    partition_store.delete_automation_state(
                        conn, automation.id, keep_triggers=keep, partitions=owned
                    )
            for automation_id in gone:
                partition_store.delete_automation_state(conn, automation_id, partitions=owned)
        for automation in fresh:
            self._apply(automation)
        for automation_id in gone:
            self._unload(automation_id)
        self._synced = counted
        logger.info(
            "automations synced from the database",
            extra={"loaded": len(fresh), "unloaded": len(gone)},
        )
        return len(fresh) + len(gone)

    # ------------------------------------------------------------------ internals

    def _apply(self, automation: automations.Automation) -> None:
        if automation.enabled:
            self._load(automation)
        else:
            self._unload(automation.id)

    def _load(self, automation: automations.Automation) -> None:
        self._engine.load_automation(automation, now=self._clock())
        self._count()

    def _unload(self, automation_id: str) -> None:
        self._engine.unload_automation(automation_id)
        self._count()

    def _count(self) -> None:
        metrics.LOADED_AUTOMATIONS.set(len(self._engine.automations))

    def _changed(
        self,
        conn: Any,
        kind: str,
        automation: automations.Automation,
        *,
        depth: int = 0,
        origin: str = "",
    ) -> None:
        """Writes ``prefect.automation.<kind>`` for the relay and counts the change.

        The event's payload is the automation; the count is ``cluster.automations_version``.
        """
        count_change(conn)
        now = self._clock()
        event = lifecycle.automation_changed(kind, pj.dump_automation(automation), now=now)
        caused = planning.Caused(event, depth, origin or event.id)
        publish_in(conn, caused, self._engine.router.partitions, now)


def count_change(conn: Any) -> None:
    """Increments the cluster's change counter in the transaction of a change.

    Automation changes (here) and webhook changes (``cluster_webhooks``) count: every replica
    compares it with the value it last synced before relying on what it has in memory.
    """
    c = tables.cluster
    conn.execute(sa.update(c).values(automations_version=c.c.automations_version + 1))


def changes_counted(conn: Any) -> int:
    """The cluster's change counter (``cluster.automations_version``, see :func:`count_change`)."""
    return int(conn.execute(sa.select(tables.cluster.c.automations_version)).scalar_one())


def publish_in(conn: Any, caused: planning.Caused, partitions: int, now: float) -> None:
    """Writes a change's event into the outbox, for its raw partition, with its lineage.

    The relay publishes it and the partition's owner evaluates it; the lineage (chain depth and
    origin) is written only for an event with a cause (``depth > 0``).
    """
    messages = partition_commit.event_messages([caused], partitions, relayed_by=None)
    partition_store.add_messages(conn, messages, now)
    if caused.depth > 0:
        partition_store.add_lineage(conn, [(caused.event.id, caused.depth, caused.origin)], now)
