"""The read side of webhooks: queries on their own connections, never through the writer."""

from __future__ import annotations

from automations.domain import webhooks
from automations.store import database as database_
from automations.store import webhooks_repo


class WebhookQueries:
    """Read-only webhook queries (thread-safe: each opens its own connection).

    Args:
        database: The database.
    """

    def __init__(self, database: database_.Database) -> None:
        self._database = database

    def get_webhook(self, webhook_id: str) -> webhooks.Webhook:
        """Returns one webhook or raises NotFound."""
        with self._database.read() as conn:
            return webhooks_repo.get(conn, webhook_id)

    def list_webhooks(
        self, *, page_size: int, page_token: str
    ) -> tuple[list[webhooks.Webhook], str]:
        """A page of webhooks by creation order."""
        with self._database.read() as conn:
            return webhooks_repo.list_page(conn, page_size=page_size, page_token=page_token)

    def all_webhooks(self) -> list[webhooks.Webhook]:
        """Every webhook (what the HTTP endpoint serves)."""
        with self._database.read() as conn:
            return webhooks_repo.list_all(conn)

    def list_deliveries(
        self, webhook_id: str, *, page_size: int, page_token: str
    ) -> tuple[list[webhooks.Delivery], str]:
        """A page of one webhook's deliveries, newest first."""
        with self._database.read() as conn:
            return webhooks_repo.list_deliveries(
                conn, webhook_id, page_size=page_size, page_token=page_token
            )
