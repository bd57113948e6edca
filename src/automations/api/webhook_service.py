"""``automations.v1.WebhookService``: webhook CRUD, rotation, the dry run and delivery history.

Writes go through the single writer (the ``webhooks`` table and the ``prefect-cloud.webhook.*``
audit event commit together, ``pipeline.webhook_changes``: the backend's ``webhooks``, in
single-node mode or on a cluster replica); reads use their own connections. After
every change the HTTP endpoint's directory is reloaded before the call answers, so a created
webhook serves at once and a disabled, deleted or rotated one stops at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf import empty_pb2

from automations.actions.templates import webhooks as webhook_templates
from automations.api import paging
from automations.domain import errors, webhooks
from automations.pipeline import webhook_queries
from automations.pipeline import writer as writer_
from automations.v1 import webhook_pb2, webhook_service_pb2, webhook_service_pb2_grpc
from automations.webhooks import processing, requests
from automations.wire import events as wire_events
from automations.wire import webhooks as wire_webhooks


def _check(webhook: webhooks.Webhook) -> None:
    webhooks.check_webhook(webhook)
    webhook_templates.validate_template(webhook.template)


class WebhookService(webhook_service_pb2_grpc.WebhookServiceServicer):
    """Creates, reads, updates, deletes, rotates and tests webhooks.

    Args:
        writer: The single writer; its backend's ``webhooks`` (``pipeline.webhook_changes``)
            makes the changes (``EngineBackend`` or a cluster replica's ``ClusterBackend``).
        reader: Read-side queries.
        base_url: The webhooks' base URL (``http://HOST:PORT``), for their ``url``.
        on_change: Awaited after every change (reloads the HTTP endpoint's directory).
        flush_deliveries: Awaited before listing deliveries (writes the waiting ones).
        clock: Wall clock, seconds since the epoch.
    """

    def __init__(
        self,
        writer: writer_.Writer[Any],
        reader: webhook_queries.WebhookQueries,
        *,
        base_url: str,
        on_change: Callable[[], Awaitable[None]] | None = None,
        flush_deliveries: Callable[[], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._base_url = base_url
        self._on_change = on_change
        self._flush = flush_deliveries
        self._clock = clock

    def _out(self, webhook: webhooks.Webhook) -> webhook_pb2.Webhook:
        return wire_webhooks.webhook_to_proto(webhook, base_url=self._base_url)

    async def _changed(self) -> None:
        if self._on_change is not None:
            await self._on_change()

    async def _get(self, name: str, *, field: str = "name") -> webhooks.Webhook:
        webhook_id = wire_webhooks.webhook_id_from_name(name, field=field)
        return await asyncio.to_thread(self._reader.get_webhook, webhook_id)

    async def CreateWebhook(  # noqa: N802 - gRPC method name
        self, request: webhook_service_pb2.CreateWebhookRequest, context: Any
    ) -> webhook_pb2.Webhook:
        """Validates and stores a new webhook with a fresh slug (or only validates it)."""
        if not request.HasField("webhook"):
            raise errors.InvalidArgument("webhook", "is required")
        webhook = wire_webhooks.webhook_from_proto(
            request.webhook,
            webhook_id=str(uuid.uuid4()),
            slug=webhooks.new_slug(),
            now=self._clock(),
        )
        _check(webhook)
        if request.validate_only:
            return self._out(webhook)
        stored = await self._writer.call(lambda backend: backend.webhooks.create(webhook))
        await self._changed()
        return self._out(stored)

    async def GetWebhook(  # noqa: N802 - gRPC method name
        self, request: webhook_service_pb2.GetWebhookRequest, context: Any
    ) -> webhook_pb2.Webhook:
        """Returns one webhook."""
        return self._out(await self._get(request.name))

    async def ListWebhooks(  # noqa: N802 - gRPC method name
        self, request: webhook_service_pb2.ListWebhooksRequest, context: Any
    ) -> webhook_service_pb2.ListWebhooksResponse:
        """Returns a page of webhooks, oldest first."""
        size = paging.page_size(request.page_size)
        found, token = await asyncio.to_thread(
            lambda: self._reader.list_webhooks(page_size=size, page_token=request.page_token)
        )
        return webhook_service_pb2.ListWebhooksResponse(
            webhooks=[self._out(w) for w in found], next_page_token=token
        )

    async def UpdateWebhook(  # noqa: N802 - gRPC method name
        self, request: webhook_service_pb2.UpdateWebhookRequest, context: Any
    ) -> webhook_pb2.Webhook:
        """Replaces the fields named by ``update_mask`` (every field set when it is empty)."""
        if not request.HasField("webhook"):
            raise errors.InvalidArgument("webhook", "is required")
        current = await self._get(request.webhook.name, field="webhook.name")
        if request.webhook.etag and request.webhook.etag != wire_webhooks.etag(current):
            raise errors.Aborted(
                f"the webhook changed since it was read (etag {request.webhook.etag!r} is stale)"
            )
        mask = request.update_mask if request.HasField("update_mask") else None
        updated = wire_webhooks.apply_update(current, request.webhook, mask, now=self._clock())
        _check(updated)
        if request.validate_only:
            return self._out(updated)
        stored = await self._writer.call(lambda backend: backend.webhooks.update(updated))
        await self._changed()
        return self._out(stored)

    async def DeleteWebhook(  # noqa: N802 - gRPC method name
        self, request: webhook_service_pb2.DeleteWebhookRequest, context: Any
    ) -> empty_pb2.Empty:
        """Deletes a webhook and its delivery history."""
        current = await self._get(request.name)
        if request.etag and request.etag != wire_webhooks.etag(current):
            raise errors.Aborted(f"the webhook changed since it was read (etag {request.etag!r})")
        now = self._clock()
        await self._writer.call(lambda backend: backend.webhooks.delete(current.id, now))
        await self._changed()
        return empty_pb2.Empty()

    async def RotateWebhook(  # noqa: N802 - gRPC method name
        self, request: webhook_service_pb2.RotateWebhookRequest, context: Any
    ) -> webhook_pb2.Webhook:
        """Gives a webhook a new slug; the old URL stops answering."""
        current = await self._get(request.name)
        rotated = dataclasses.replace(current, slug=webhooks.new_slug(), updated=self._clock())
        stored = await self._writer.call(lambda backend: backend.webhooks.update(rotated))
        await self._changed()
        return self._out(stored)

    async def TestWebhook(  # noqa: N802 - gRPC method name
        self, request: webhook_service_pb2.TestWebhookRequest, context: Any
    ) -> webhook_service_pb2.TestWebhookResponse:
        """Renders a sample request; returns the events or the error, publishing nothing."""
        if bool(request.name) == request.HasField("webhook"):
            raise errors.InvalidArgument("name", "exactly one of 'name' and 'webhook' must be set")
        now = self._clock()
        if request.name:
            webhook = await self._get(request.name)
        else:
            webhook = wire_webhooks.webhook_from_proto(
                request.webhook, webhook_id=str(uuid.uuid4()), slug="", now=now
            )
            webhook_templates.validate_template(webhook.template, field="webhook.template")
        sample = requests.Request(
            (request.method or "POST").upper(),
            requests.Headers(request.headers.items()),
            request.body,
            query=request.query,
            path=request.path,
            received=now,
        )
        try:
            done = await asyncio.to_thread(processing.process, webhook, sample, delivery_id=None)
        except processing.Failed as exc:
            return webhook_service_pb2.TestWebhookResponse(rendered=exc.rendered, error=exc.message)
        return webhook_service_pb2.TestWebhookResponse(
            rendered=done.rendered, events=[wire_events.event_to_proto(e) for e in done.events]
        )

    async def ListWebhookDeliveries(  # noqa: N802 - gRPC method name
        self, request: webhook_service_pb2.ListWebhookDeliveriesRequest, context: Any
    ) -> webhook_service_pb2.ListWebhookDeliveriesResponse:
        """Returns a webhook's last deliveries, newest first."""
        webhook = await self._get(request.parent, field="parent")
        size = paging.page_size(request.page_size)
        if self._flush is not None and not request.page_token:
            await self._flush()
        found, token = await asyncio.to_thread(
            lambda: self._reader.list_deliveries(
                webhook.id, page_size=size, page_token=request.page_token
            )
        )
        return webhook_service_pb2.ListWebhookDeliveriesResponse(
            deliveries=[wire_webhooks.delivery_to_proto(d) for d in found], next_page_token=token
        )
