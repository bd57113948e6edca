"""What the engine and its webhook front process send each other, as JSON-able data.

Webhooks (the engine's directory, pushed to the front: secrets included, the link is a private
socket pair), deliveries (the front's history, written by the engine) and event-log rows (the
events of requests, encoded by the front; the engine rebuilds each event from its row).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from automations.domain import webhooks

Row = tuple[str, str, float, float, str, str | None, bytes]
"""An event-log row (``store.event_log.Row``): id, event, occurred, received, resource id,
follows, and the JSON body of resource, related and payload."""


def webhook_to_data(webhook: webhooks.Webhook) -> dict[str, Any]:
    """A webhook as data."""
    return dataclasses.asdict(webhook)


def webhook_from_data(data: dict[str, Any]) -> webhooks.Webhook:
    """The webhook :func:`webhook_to_data` made the data of."""
    auth = dict(data["auth"])
    auth["signature_scheme"] = webhooks.SignatureScheme(auth["signature_scheme"])
    return webhooks.Webhook(**{**data, "auth": webhooks.WebhookAuth(**auth)})


def delivery_to_data(delivery: webhooks.Delivery) -> dict[str, Any]:
    """A delivery as data (its fields one by one: ``dataclasses.asdict`` deep-copies each)."""
    return {field: getattr(delivery, field) for field in _DELIVERY_FIELDS}


_DELIVERY_FIELDS = tuple(field.name for field in dataclasses.fields(webhooks.Delivery))


def delivery_from_data(data: dict[str, Any]) -> webhooks.Delivery:
    """The delivery :func:`delivery_to_data` made the data of."""
    return webhooks.Delivery(**{**data, "event_ids": tuple(data["event_ids"])})


def rows_to_data(rows: Sequence[Row]) -> list[list[Any]]:
    """Event-log rows as data (each body, UTF-8 JSON, as text)."""
    return [[*row[:6], row[6].decode()] for row in rows]


def rows_from_data(data: Sequence[Sequence[Any]]) -> list[Row]:
    """The rows :func:`rows_to_data` made the data of."""
    return [(r[0], r[1], r[2], r[3], r[4], r[5], r[6].encode()) for r in data]
