"""The read side: queries over the store, run on any worker thread with their own connections.

:class:`Queries` implements the ``Reader`` protocols the API declares
(``api.automation_service.Reader``, and ``api.event_service``'s event listing). Reads never go
through the single writer: they see what has been committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from automations.domain import automations, events, firings, invocations
from automations.store import automations_repo, event_log, firings_repo, outbox_repo
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
        self, *, page_size: int, page_token: str
    ) -> tuple[list[automations.Automation], str]:
        """A page of automations by creation order."""
        with self._database.read() as conn:
            return automations_repo.list_page(conn, page_size=page_size, page_token=page_token)

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
