"""Webhook changes on the writer: the ``webhooks`` table and Prefect Cloud's audit events together.

Creating, updating (rotating included) and deleting a webhook writes the table and publishes
``prefect-cloud.webhook.created`` / ``.updated`` / ``.deleted`` (resource
``prefect-cloud.webhook.<id>``) in the same transaction; the event runs through the cascade like
any automation-made event, so an automation can watch webhook changes. The payload describes the
webhook without its secrets: no slug (it is the URL's secret), no token hash, no signing secret.

Also here: writing a batch of deliveries to the history (``webhooks.deliveries``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from automations.actions import planning
from automations.domain import events, webhooks
from automations.pipeline import backend as backend_
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


def _changed(
    backend: backend_.EngineBackend, conn: Any, kind: str, webhook: webhooks.Webhook, now: float
) -> None:
    assert kind in _KINDS
    event = events.Event(
        id=str(uuid.uuid4()),
        event=f"prefect-cloud.webhook.{kind}",
        occurred=now,
        resource={events.RESOURCE_ID: webhook.resource_id, events.RESOURCE_NAME: webhook.name},
        payload=audit_payload(webhook),
        received=now,
    )
    backend.cascade.feed(conn, [planning.Caused(event, 0, event.id)], now)


def create(backend: backend_.EngineBackend, webhook: webhooks.Webhook) -> webhooks.Webhook:
    """Stores a new webhook and publishes ``prefect-cloud.webhook.created``."""
    with backend.cascade.transaction(backend.database) as conn:
        webhooks_repo.create(conn, webhook)
        _changed(backend, conn, "created", webhook, webhook.created)
    return webhook


def update(backend: backend_.EngineBackend, webhook: webhooks.Webhook) -> webhooks.Webhook:
    """Replaces a webhook read at ``webhook.version``; publishes ``prefect-cloud.webhook.updated``.

    Raises:
        errors.NotFound: It was deleted meanwhile.
        errors.Aborted: It changed meanwhile.
    """
    with backend.cascade.transaction(backend.database) as conn:
        stored = webhooks_repo.update(conn, webhook)
        _changed(backend, conn, "updated", stored, stored.updated)
    return stored


def delete(backend: backend_.EngineBackend, webhook_id: str, now: float) -> None:
    """Deletes a webhook and its history; publishes ``prefect-cloud.webhook.deleted``.

    Raises:
        errors.NotFound: No such webhook.
    """
    with backend.cascade.transaction(backend.database) as conn:
        current = webhooks_repo.get(conn, webhook_id)
        webhooks_repo.delete(conn, webhook_id)
        _changed(backend, conn, "deleted", current, now)


def record_deliveries(
    backend: backend_.EngineBackend, deliveries: Sequence[webhooks.Delivery], keep: int
) -> None:
    """Writes deliveries and trims each webhook's history to its newest ``keep``."""
    with backend.database.write() as conn:
        webhooks_repo.record_deliveries(conn, deliveries, keep=keep)
