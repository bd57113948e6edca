"""Webhook changes on the writer: the ``webhooks`` table and Prefect Cloud's audit events together.

Creating, updating (rotating included) and deleting a webhook writes the table and publishes
``prefect-cloud.webhook.created`` / ``.updated`` / ``.deleted`` (resource
``prefect-cloud.webhook.<id>``) in the same transaction; the event runs through the cascade like
any automation-made event, so an automation can watch webhook changes. The payload describes the
webhook without its secrets: no slug (it is the URL's secret), no token hash, no signing secret.

The same changes serve both modes (:class:`WebhookChanges`): in single-node mode the audit event
is fed to the cascade in the change's transaction (:meth:`WebhookChanges.single_node`); in cluster
mode it goes to the outbox for the owner of its partition, and the change is counted so that every
replica's webhook directory learns of it (``cluster.cluster_webhooks``).

Also here: writing a batch of deliveries to the history (``webhooks.deliveries``).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from automations.actions import planning
from automations.domain import events, webhooks
from automations.pipeline import cascade as cascade_
from automations.store import database as database_
from automations.store import webhooks_repo

_KINDS = ("created", "updated", "deleted")


def audit_payload(webhook: webhooks.Webhook) -> dict[str, Any]:
    """The webhook as its audit events show it (no secrets, no slug)."""
    auth = webhook.auth
    return {
        "id": webhook.id,
        "name": webhook.name,
        "description": webhook.description,
        "enabled": webhook.enabled,
        "template": webhook.template,
        "strict": webhook.strict,
        "rate_limit": webhook.rate_limit,
        "bearer_token": bool(auth.bearer_token_hash),
        "signature_scheme": auth.signature_scheme.value,
    }


Announce = Callable[[Any, events.Event, float], None]
"""Publishes an audit event in a change's transaction: ``(conn, event, now)``."""


def audit_event(kind: str, webhook: webhooks.Webhook, now: float) -> events.Event:
    """``prefect-cloud.webhook.<kind>`` for a change of ``webhook`` (no secrets, no slug)."""
    assert kind in _KINDS
    return events.Event(
        id=str(uuid.uuid4()),
        event=f"prefect-cloud.webhook.{kind}",
        occurred=now,
        resource={events.RESOURCE_ID: webhook.resource_id, events.RESOURCE_NAME: webhook.name},
        payload=audit_payload(webhook),
        received=now,
    )


class WebhookChanges:
    """Webhook create / update / delete, each with its audit event in one transaction.

    Args:
        transaction: Opens a write transaction (a context manager yielding its connection).
        announce: Publishes the audit event in that transaction.
    """

    def __init__(
        self,
        transaction: Callable[[], contextlib.AbstractContextManager[Any]],
        announce: Announce,
    ) -> None:
        self._transaction = transaction
        self._announce = announce

    @classmethod
    def single_node(cls, database: database_.Database, cascade: cascade_.Cascade) -> WebhookChanges:
        """Changes whose audit events run through the single-node cascade at once."""

        def announce(conn: Any, event: events.Event, now: float) -> None:
            cascade.feed(conn, [planning.Caused(event, 0, event.id)], now)

        return cls(lambda: cascade.transaction(database), announce)

    def create(self, webhook: webhooks.Webhook) -> webhooks.Webhook:
        """Stores a new webhook and publishes ``prefect-cloud.webhook.created``."""
        with self._transaction() as conn:
            webhooks_repo.create(conn, webhook)
            self._announce(conn, audit_event("created", webhook, webhook.created), webhook.created)
        return webhook

    def update(self, webhook: webhooks.Webhook) -> webhooks.Webhook:
        """Replaces a webhook read at ``webhook.version``; publishes ``prefect-cloud.webhook.updated``.

        Raises:
            errors.NotFound: It was deleted meanwhile.
            errors.Aborted: It changed meanwhile.
        """
        with self._transaction() as conn:
            stored = webhooks_repo.update(conn, webhook)
            self._announce(conn, audit_event("updated", stored, stored.updated), stored.updated)
        return stored

    def delete(self, webhook_id: str, now: float) -> None:
        """Deletes a webhook and its history; publishes ``prefect-cloud.webhook.deleted``.

        Raises:
            errors.NotFound: No such webhook.
        """
        with self._transaction() as conn:
            current = webhooks_repo.get(conn, webhook_id)
            webhooks_repo.delete(conn, webhook_id)
            self._announce(conn, audit_event("deleted", current, now), now)


def record_deliveries(
    database: database_.Database, deliveries: Sequence[webhooks.Delivery], keep: int
) -> None:
    """Writes deliveries and trims each webhook's history to its newest ``keep``."""
    with database.write() as conn:
        webhooks_repo.record_deliveries(conn, deliveries, keep=keep)
