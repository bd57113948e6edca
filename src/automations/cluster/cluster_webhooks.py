"""Webhooks in cluster mode: changes counted for every replica, audit events through the outbox.

Every replica serves ``/hooks/<slug>`` from an in-memory directory (``webhooks.endpoint``). A
webhook change made through any replica writes the ``webhooks`` row, increments the cluster's
change counter (``cluster_changes.count_change``, the one automation changes increment) and
writes its ``prefect-cloud.webhook.*`` audit event into the outbox
(``cluster_changes.publish_in``), all in one transaction. The serving replica reloads its
directory before the call answers; the others read the counter (:func:`changes_counted`) every
``webhooks.directory.REFRESH_SECONDS`` and whenever a request names a slug they do not serve,
and reload when it moved: a webhook created, enabled or rotated through one replica serves on
every replica from the moment the call answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from automations.actions import planning
from automations.cluster import cluster_changes, cluster_ingest, log_errors
from automations.domain import errors, events
from automations.pipeline import webhook_changes
from automations.store import database as database_
from automations.webhooks import publishing


def changes(database: database_.Database, partitions: int) -> webhook_changes.WebhookChanges:
    """Webhook changes of a replica (``ClusterBackend.webhooks``, run on its writer thread)."""

    def announce(conn: Any, event: events.Event, now: float) -> None:
        cluster_changes.count_change(conn)
        cluster_changes.publish_in(conn, planning.Caused(event, 0, event.id), partitions, now)

    return webhook_changes.WebhookChanges(database.write, announce)


def changes_counted(database: database_.Database) -> int:
    """The cluster's change counter now (one small query)."""
    with database.read() as conn:
        return cluster_changes.changes_counted(conn)


def publisher(ingest: cluster_ingest.ClusterIngest) -> publishing.Submit:
    """Hands a webhook request's events to cluster ingest (``WebhookEndpoint``'s ``submit``).

    An event too large for the NATS server (its ``max_payload``) is the request's own fault:
    ``InvalidArgument`` (400), not the ``ResourceExhausted`` (503, retry) of a full log.
    """

    async def publish(batch: Sequence[events.Event], rows: Sequence[Any] | None) -> list[bool]:
        try:
            return await ingest.publish(batch, rows)
        except log_errors.LogMessageTooLarge as exc:
            raise errors.InvalidArgument(
                "event", f"too large for the cluster's log: {exc.message}", reason=exc.reason
            ) from None

    return lambda batch, rows: asyncio.ensure_future(publish(batch, rows))
