"""The client's webhook calls: create, read, list, update, delete, enable, disable, rotate, test.

Webhooks come out as JSON dicts (``wire.webhooks.webhook_to_json``): ``id``, ``name``,
``description``, ``enabled``, ``template``, ``strict``, ``slug``, ``url``, ``rate_limit``,
``auth`` (``bearer_token`` and ``signing_secret`` only say whether one is set) and ISO 8601
``created`` / ``updated``. Secrets go in and never come back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc
from google.protobuf import field_mask_pb2

from automations.client import _base, _errors, _paging
from automations.domain import errors
from automations.v1 import webhook_pb2, webhook_service_pb2, webhook_service_pb2_grpc
from automations.wire import events as wire_events
from automations.wire import structs
from automations.wire import webhooks as wire_webhooks

_AUTH_FIELDS = {
    "bearer_token": "auth.bearer_token",
    "signature_scheme": "auth.signature_scheme",
    "signing_secret": "auth.signing_secret",
    "signature_header": "auth.signature_header",
    "timestamp_tolerance": "auth.timestamp_tolerance",
}
_FIELDS = {
    "name": "display_name",
    "description": "description",
    "enabled": "enabled",
    "template": "template",
    "strict": "strict",
    "rate_limit": "rate_limit",
    **_AUTH_FIELDS,
}


def _message(fields: Mapping[str, Any]) -> webhook_pb2.Webhook:
    """A ``Webhook`` message from keyword fields (see ``create_webhook``)."""
    unknown = set(fields) - set(_FIELDS)
    if unknown:
        raise _errors.CallError.from_invalid(
            errors.InvalidArgument(sorted(unknown)[0], "is not a webhook field")
        )
    message = webhook_pb2.Webhook(
        display_name=fields.get("name", ""),
        description=fields.get("description", ""),
        template=fields.get("template", ""),
        strict=bool(fields.get("strict", False)),
        rate_limit=float(fields.get("rate_limit", 0.0)),
    )
    if "enabled" in fields:
        message.enabled = bool(fields["enabled"])
    auth = message.auth
    auth.bearer_token = fields.get("bearer_token", "")
    auth.signing_secret = fields.get("signing_secret", "")
    auth.signature_header = fields.get("signature_header", "")
    try:
        auth.signature_scheme = wire_webhooks.scheme_value(fields.get("signature_scheme", "none"))
    except errors.InvalidArgument as exc:
        raise _errors.CallError.from_invalid(exc) from None
    tolerance = fields.get("timestamp_tolerance")
    if tolerance is not None:
        structs.set_duration(auth.timestamp_tolerance, float(tolerance))
    return message


class WebhookCalls(_base.Calls):
    """Webhooks as JSON dicts (mixed into ``automations.Client``)."""

    _channel: grpc.Channel

    @property
    def _webhooks(self) -> webhook_service_pb2_grpc.WebhookServiceStub:
        stub: webhook_service_pb2_grpc.WebhookServiceStub | None = getattr(
            self, "_webhooks_stub", None
        )
        if stub is None:
            stub = webhook_service_pb2_grpc.WebhookServiceStub(self._channel)
            self._webhooks_stub = stub
        return stub

    def create_webhook(self, name: str, template: str, **fields: Any) -> dict[str, Any]:
        """Creates a webhook; returns it with its ``id``, ``slug`` and ``url``.

        Args:
            name: Its name.
            template: The Jinja template rendering a request into an event.
            **fields: ``description``, ``enabled``, ``strict``, ``rate_limit`` (requests/s),
                ``bearer_token``, ``signature_scheme`` (``github``, ``stripe``, ``slack``,
                ``standard-webhooks``, ``hmac-sha256``), ``signing_secret``,
                ``signature_header``, ``timestamp_tolerance`` (seconds).

        Raises:
            CallError: INVALID_ARGUMENT naming the field (e.g. ``template``), ...
        """
        message = _message({**fields, "name": name, "template": template})
        request = webhook_service_pb2.CreateWebhookRequest(webhook=message)
        created = self._call(lambda: self._webhooks.CreateWebhook(request, timeout=self.timeout))
        return wire_webhooks.webhook_to_json(created)

    def get_webhook(self, webhook_id: str) -> dict[str, Any]:
        """Returns one webhook.

        Raises:
            CallError: NOT_FOUND if there is none with that id.
        """
        request = webhook_service_pb2.GetWebhookRequest(name=wire_webhooks.webhook_name(webhook_id))
        found = self._call(lambda: self._webhooks.GetWebhook(request, timeout=self.timeout))
        return wire_webhooks.webhook_to_json(found)

    def list_webhooks(self, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Returns webhooks, oldest first, following pages (at most ``limit``)."""

        def fetch(token: str, size: int) -> tuple[list[Any], str]:
            request = webhook_service_pb2.ListWebhooksRequest(page_size=size, page_token=token)
            reply = self._call(lambda: self._webhooks.ListWebhooks(request, timeout=self.timeout))
            return list(reply.webhooks), reply.next_page_token

        return [wire_webhooks.webhook_to_json(w) for w in _paging.pages(fetch, limit)]

    def update_webhook(self, webhook_id: str, **fields: Any) -> dict[str, Any]:
        """Changes the given fields of a webhook (those of ``create_webhook``, ``name`` too).

        An empty ``bearer_token`` removes the token requirement.

        Raises:
            CallError: NOT_FOUND, INVALID_ARGUMENT naming the field, ...
        """
        message = _message(fields)
        message.name = wire_webhooks.webhook_name(webhook_id)
        mask = field_mask_pb2.FieldMask(paths=[_FIELDS[key] for key in fields])
        request = webhook_service_pb2.UpdateWebhookRequest(webhook=message, update_mask=mask)
        updated = self._call(lambda: self._webhooks.UpdateWebhook(request, timeout=self.timeout))
        return wire_webhooks.webhook_to_json(updated)

    def enable_webhook(self, webhook_id: str) -> dict[str, Any]:
        """Enables a webhook."""
        return self.update_webhook(webhook_id, enabled=True)

    def disable_webhook(self, webhook_id: str) -> dict[str, Any]:
        """Disables a webhook: its URL answers 404 until it is enabled again."""
        return self.update_webhook(webhook_id, enabled=False)

    def delete_webhook(self, webhook_id: str) -> None:
        """Deletes a webhook and its delivery history.

        Raises:
            CallError: NOT_FOUND if there is none with that id.
        """
        request = webhook_service_pb2.DeleteWebhookRequest(
            name=wire_webhooks.webhook_name(webhook_id)
        )
        self._call(lambda: self._webhooks.DeleteWebhook(request, timeout=self.timeout))

    def rotate_webhook(self, webhook_id: str) -> dict[str, Any]:
        """Gives a webhook a new slug (and URL); the old URL answers 404 from then on."""
        request = webhook_service_pb2.RotateWebhookRequest(
            name=wire_webhooks.webhook_name(webhook_id)
        )
        rotated = self._call(lambda: self._webhooks.RotateWebhook(request, timeout=self.timeout))
        return wire_webhooks.webhook_to_json(rotated)

    def test_webhook(
        self,
        webhook_id: str,
        *,
        body: bytes = b"",
        method: str = "POST",
        headers: Mapping[str, str] | None = None,
        query: str = "",
        path: str = "",
    ) -> dict[str, Any]:
        """Renders a sample request with a webhook's template, publishing nothing.

        Returns:
            ``{"rendered": ..., "events": [Prefect's event JSON...], "error": ...}``: ``error``
            is why the request would be answered 400, "" when it would be accepted.
        """
        request = webhook_service_pb2.TestWebhookRequest(
            name=wire_webhooks.webhook_name(webhook_id),
            method=method,
            headers=dict(headers or {}),
            body=body,
            query=query,
            path=path,
        )
        reply = self._call(lambda: self._webhooks.TestWebhook(request, timeout=self.timeout))
        return {
            "rendered": reply.rendered,
            "events": [wire_events.event_message_to_json(e) for e in reply.events],
            "error": reply.error,
        }

    def list_webhook_deliveries(
        self, webhook_id: str, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Returns a webhook's last deliveries, newest first.

        Each is a dict: ``id``, ``received``, ``method``, ``status``, ``error``, ``rendered``,
        ``headers`` (secrets masked), ``event_ids``, ``duration``.
        """
        parent = wire_webhooks.webhook_name(webhook_id)

        def fetch(token: str, size: int) -> tuple[list[Any], str]:
            request = webhook_service_pb2.ListWebhookDeliveriesRequest(
                parent=parent, page_size=min(size, 1000), page_token=token
            )
            reply = self._call(
                lambda: self._webhooks.ListWebhookDeliveries(request, timeout=self.timeout)
            )
            return list(reply.deliveries), reply.next_page_token

        return [wire_webhooks.delivery_to_json(d) for d in _paging.pages(fetch, limit)]
