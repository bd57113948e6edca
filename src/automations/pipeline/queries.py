"""The read side: queries over the store, run on any worker thread with their own connections.

:class:`Queries` implements the ``Reader`` protocols the API declares
(``api.automation_service.Reader``, and ``api.event_service``'s event listing). Reads never go
through the single writer: they see what has been committed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from automations.domain import automations, events, firings, invocations
from automations.store import automations_repo, event_log, firings_repo, outbox_repo, pagination
from automations.store import database as database_


class Queries:
    """Read-only queries (thread-safe: each opens its own connection).

    Args:
        database: The database.
    """

    def __init__(self, database: database_.Database) -> None:
        self._database = database

    def get_automation(self, automation_id: str) -> automations.Automation:
        """Returns one automation or raises NotFound."""
        with self._database.read() as conn:
            return automations_repo.get(conn, automation_id)

    def list_automations(
        self,
        *,
        page_size: int,
        page_token: str,
        matches: Callable[[automations.Automation], bool] | None = None,
        enabled: bool | None = None,
    ) -> tuple[list[automations.Automation], str]:
        """A page of automations by creation order, optionally only those that match.

        With ``matches``, pages of the store are read until ``page_size`` automations match or
        the store has no more. Each read asks for at most as many rows as are still missing, so
        a full page ends at a row that matched and the store's token resumes right after it.

        Args:
            page_size: The most automations to return (0: the store's default).
            page_token: A token returned with the previous page.
            matches: Keep only the automations it accepts; None keeps all.
            enabled: Only enabled (True) or disabled (False) ones, in the store's query.
        """
        limit = pagination.page_limit(page_size)
        found: list[automations.Automation] = []
        token = page_token
        with self._database.read() as conn:
            while True:
                page, token = automations_repo.list_page(
                    conn, page_size=limit - len(found), page_token=token, enabled=enabled
                )
                found.extend(a for a in page if matches is None or matches(a))
                if len(found) >= limit or not token:
                    return found, token

    def get_firing(self, firing_id: str) -> firings.Firing:
        """Returns one stored firing or raises NotFound."""
        with self._database.read() as conn:
            return firings_repo.get(conn, firing_id)

    def get_invocation(self, invocation_id: str) -> invocations.Invocation:
        """Returns one action invocation or raises NotFound."""
        with self._database.read() as conn:
            return outbox_repo.get(conn, invocation_id)

    def list_firings(
        self, *, automation_id: str | None, page_size: int, page_token: str
    ) -> tuple[list[firings.Firing], str]:
        """A page of firings, newest first."""
        with self._database.read() as conn:
            return firings_repo.list_page(
                conn, automation_id=automation_id, page_size=page_size, page_token=page_token
            )

    def list_events(self, **filters: Any) -> tuple[list[events.Event], str]:
        """A page of the event log (see ``store.event_log.list_events``)."""
        with self._database.read() as conn:
            return event_log.list_events(conn, **filters)

    def list_invocations(
        self,
        *,
        automation_id: str | None,
        statuses: Sequence[invocations.InvocationStatus] | None,
        page_size: int,
        page_token: str,
    ) -> tuple[list[invocations.Invocation], str]:
        """A page of action invocations, oldest first."""
        with self._database.read() as conn:
            return outbox_repo.list_page(
                conn,
                automation_id=automation_id,
                status=[str(s) for s in statuses] if statuses else None,
                page_size=page_size,
                page_token=page_token,
            )

    def outbox_stats(self) -> outbox_repo.Stats:
        """The outbox's open work."""
        with self._database.read() as conn:
            return outbox_repo.stats(conn)
