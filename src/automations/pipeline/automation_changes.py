"""Automation changes on the writer: store, engine and lifecycle events in one transaction.

Creating, updating, deleting, enabling and disabling an automation changes the ``automations``
table, loads or unloads the automation in the trigger engine, drops state that no longer applies
and publishes Prefect's ``prefect.automation.created`` / ``.updated`` / ``.deleted`` event (which
other automations may watch: it runs through the cascade like any automation-made event).

On an update, triggers whose definition did not change keep their ids (``wire.automations``), so
their buckets live on; the state of the others is deleted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from automations import metrics
from automations.actions import checks, lifecycle, planning
from automations.domain import automations, errors, triggers
from automations.domain import prefect_json as pj
from automations.pipeline import cascade as cascade_
from automations.store import automations_repo, state_repo
from automations.store import database as database_


class AutomationChanges:
    """Applies automation changes (writer thread only).

    Args:
        database: The database.
        cascade: The engine and the cascade its firings run through.
        clock: Wall clock, seconds since the epoch.
    """

    def __init__(
        self,
        database: database_.Database,
        cascade: cascade_.Cascade,
        *,
        clock: Callable[[], float],
    ) -> None:
        self._database = database
        self._cascade = cascade
        self._clock = clock

    def create(self, automation: automations.Automation) -> automations.Automation:
        """Stores a new automation, loads it when enabled, publishes ``automation.created``."""
        checks.check_automation(automation)
        with self._cascade.transaction(self._database) as conn:
            automations_repo.create(conn, automation)
            if automation.enabled:
                self._load(automation)
            self._changed(conn, "created", automation)
        self._count()
        return automation

    def update(self, automation: automations.Automation) -> automations.Automation:
        """Stores a new definition; unchanged triggers keep their state, changed ones reset."""
        checks.check_automation(automation)
        with self._cascade.transaction(self._database) as conn:
            stored = automations_repo.update(conn, automation)
            keep = {t.id for t in triggers.iter_triggers(stored.trigger)}
            state_repo.delete_stale_triggers(conn, stored.id, keep)
            if stored.enabled:
                # triggers whose id did not change keep their in-memory state
                self._load(stored)
            else:
                self._unload(stored.id)
            self._changed(conn, "updated", stored)
        self._count()
        return stored

    def delete(self, automation_id: str, *, etag: str | None = None) -> None:
        """Deletes an automation, its state and unloads it; publishes ``automation.deleted``.

        Raises:
            errors.NotFound: No such automation.
            errors.Aborted: ``etag`` is given and stale.
        """
        with self._cascade.transaction(self._database) as conn:
            current = automations_repo.get(conn, automation_id)
            if etag is not None and str(current.version) != etag:
                raise errors.Aborted(f"etag {etag!r} is stale")
            automations_repo.delete(conn, automation_id)
            state_repo.delete_automation(conn, automation_id)
            self._unload(automation_id)
            self._changed(conn, "deleted", current)
        self._count()

    def set_enabled(self, automation_id: str, enabled: bool, now: float) -> automations.Automation:
        """Enables (loads) or disables (unloads, dropping trigger state) an automation."""
        with self._cascade.transaction(self._database) as conn:
            stored = self.set_enabled_in(conn, automation_id, enabled, now)
        self._count()
        return stored

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
        """:meth:`set_enabled` inside the caller's transaction (a pause- / resume-automation).

        Its ``automation.updated`` event joins the action's causal tree (``depth``, ``origin``;
        a change made by a client starts a tree of its own).

        Raises:
            errors.NotFound: No such automation (raised before anything changed).
        """
        before = automations_repo.get(conn, automation_id)
        if enabled and not before.enabled:
            checks.check_automation(dataclasses.replace(before, enabled=True))
        stored = automations_repo.set_enabled(conn, automation_id, enabled, updated=now)
        if enabled and stored.id not in self._cascade.automations:
            self._load(stored)
        elif not enabled:
            state_repo.delete_automation(conn, automation_id)
            self._unload(automation_id)
        if before.enabled != enabled:
            self._changed(conn, "updated", stored, depth=depth, origin=origin)
        return stored

    def _load(self, automation: automations.Automation) -> None:
        self._cascade.engine.load_automation(automation, (), now=self._clock())
        self._cascade.automations[automation.id] = automation

    def _unload(self, automation_id: str) -> None:
        self._cascade.engine.unload_automation(automation_id)
        self._cascade.automations.pop(automation_id, None)

    def _changed(
        self,
        conn: Any,
        kind: str,
        automation: automations.Automation,
        *,
        depth: int = 0,
        origin: str = "",
    ) -> None:
        """Publishes ``prefect.automation.<kind>`` (payload: the automation) and evaluates it."""
        now = self._clock()
        event = lifecycle.automation_changed(kind, pj.dump_automation(automation), now=now)
        self._cascade.feed(conn, [planning.Caused(event, depth, origin or event.id)], now)

    def _count(self) -> None:
        metrics.LOADED_AUTOMATIONS.set(len(self._cascade.automations))
