"""``Webhook``, ``WebhookDelivery`` and their names <-> the domain webhook model, and the JSON shape.

Names are ``webhooks/{webhook}`` (a UUID) and ``webhooks/{webhook}/deliveries/{delivery}``. The
secrets of ``WebhookAuth`` are input-only: a bearer token becomes its hash here
(``domain.webhooks.hash_token``), and nothing secret is ever put into a message going out (only
``bearer_token_set`` and ``signing_secret_set``).

The JSON shape (``webhook_to_json``) is what the command line and the client print: Prefect's
field names (``id``, ``name``, ``description``, ``enabled``, ``template``, ``slug``, ``created``,
``updated``) plus ``url``, ``strict``, ``rate_limit`` and ``auth``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from google.protobuf import field_mask_pb2

from automations.domain import errors, webhooks
from automations.v1 import webhook_pb2
from automations.wire import structs

COLLECTION = "webhooks"
"""The collection id of webhooks: names are ``webhooks/{webhook}``."""
DELIVERIES = "deliveries"
"""The collection id of a webhook's deliveries."""

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

_SCHEMES = {
    webhook_pb2.SIGNATURE_SCHEME_UNSPECIFIED: webhooks.SignatureScheme.NONE,
    webhook_pb2.SIGNATURE_SCHEME_GITHUB: webhooks.SignatureScheme.GITHUB,
    webhook_pb2.SIGNATURE_SCHEME_STRIPE: webhooks.SignatureScheme.STRIPE,
    webhook_pb2.SIGNATURE_SCHEME_SLACK: webhooks.SignatureScheme.SLACK,
    webhook_pb2.SIGNATURE_SCHEME_STANDARD_WEBHOOKS: webhooks.SignatureScheme.STANDARD_WEBHOOKS,
    webhook_pb2.SIGNATURE_SCHEME_HMAC_SHA256: webhooks.SignatureScheme.HMAC_SHA256,
}
_SCHEME_VALUES = {scheme: value for value, scheme in _SCHEMES.items()}

UPDATABLE_FIELDS = (
    "display_name",
    "description",
    "enabled",
    "template",
    "strict",
    "rate_limit",
    "auth",
    "auth.bearer_token",
    "auth.signature_scheme",
    "auth.signing_secret",
    "auth.signature_header",
    "auth.timestamp_tolerance",
)
"""The paths UpdateWebhook's ``update_mask`` may name."""


def webhook_name(webhook_id: str) -> str:
    """``webhooks/{webhook_id}``."""
    return f"{COLLECTION}/{webhook_id}"


def webhook_id_from_name(name: str, *, field: str = "name") -> str:
    """The id in ``webhooks/{webhook}``; a bare UUID is accepted too (the command line's ID).

    Raises:
        errors.InvalidArgument: Not a webhook's name (reason ``INVALID_RESOURCE_NAME``).
    """
    collection, slash, webhook_id = name.partition("/")
    if not slash:
        collection, webhook_id = COLLECTION, name
    if collection != COLLECTION or not _UUID.fullmatch(webhook_id):
        raise errors.InvalidArgument(
            field,
            f"{name!r} is not a resource name of the form webhooks/{{webhook}} (a lower-case UUID)",
            reason="INVALID_RESOURCE_NAME",
        )
    return webhook_id


def delivery_name(webhook_id: str, delivery_id: str) -> str:
    """``webhooks/{webhook_id}/deliveries/{delivery_id}``."""
    return f"{COLLECTION}/{webhook_id}/{DELIVERIES}/{delivery_id}"


def etag(webhook: webhooks.Webhook) -> str:
    """The webhook's etag: its version."""
    return str(webhook.version)


def scheme_from_proto(value: int) -> webhooks.SignatureScheme:
    """The domain scheme of a ``SignatureScheme`` value.

    Raises:
        errors.InvalidArgument: An unknown value.
    """
    try:
        return _SCHEMES[value]  # type: ignore[index]
    except KeyError:
        raise errors.InvalidArgument(
            "auth.signature_scheme", f"{value} is not a known signature scheme"
        ) from None


def auth_from_proto(
    message: webhook_pb2.WebhookAuth,
    current: webhooks.WebhookAuth | None = None,
    paths: set[str] | None = None,
) -> webhooks.WebhookAuth:
    """The auth settings ``message`` describes, over ``current`` (an update names ``paths``).

    Without ``paths`` (a create), every field of the message counts, secrets when not empty.

    Raises:
        errors.InvalidArgument: A weak bearer token, an unknown scheme.
    """

    def wanted(field: str, populated: bool) -> bool:
        return populated if paths is None else f"auth.{field}" in paths or "auth" in paths

    result = current or webhooks.WebhookAuth()
    if wanted("bearer_token", bool(message.bearer_token)):
        token = message.bearer_token
        if token:
            webhooks.check_bearer_token(token)
        result = dataclasses.replace(
            result, bearer_token_hash=webhooks.hash_token(token) if token else ""
        )
    if wanted("signature_scheme", bool(message.signature_scheme)):
        result = dataclasses.replace(
            result, signature_scheme=scheme_from_proto(message.signature_scheme)
        )
    if wanted("signing_secret", bool(message.signing_secret)):
        result = dataclasses.replace(result, signing_secret=message.signing_secret)
    if wanted("signature_header", bool(message.signature_header)):
        result = dataclasses.replace(result, signature_header=message.signature_header)
    if wanted("timestamp_tolerance", message.HasField("timestamp_tolerance")):
        tolerance = (
            structs.duration_to_seconds(message.timestamp_tolerance)
            if message.HasField("timestamp_tolerance")
            else webhooks.DEFAULT_TOLERANCE_SECONDS
        )
        result = dataclasses.replace(result, tolerance_seconds=tolerance)
    return result


def webhook_from_proto(
    message: webhook_pb2.Webhook, *, webhook_id: str, slug: str, now: float
) -> webhooks.Webhook:
    """A new webhook from a create request's message (output-only fields ignored)."""
    return webhooks.Webhook(
        id=webhook_id,
        name=message.display_name,
        template=message.template,
        slug=slug,
        description=message.description,
        enabled=message.enabled if message.HasField("enabled") else True,
        strict=message.strict,
        rate_limit=message.rate_limit,
        auth=auth_from_proto(message.auth),
        created=now,
        updated=now,
    )


def _populated(message: webhook_pb2.Webhook, path: str) -> bool:
    if path == "enabled":
        return message.HasField("enabled")
    if path == "auth":
        return message.HasField("auth")
    if path.startswith("auth."):
        return False  # "auth" covers them
    return bool(getattr(message, path))


def apply_update(
    current: webhooks.Webhook,
    patch: webhook_pb2.Webhook,
    update_mask: field_mask_pb2.FieldMask | None,
    *,
    now: float,
) -> webhooks.Webhook:
    """``current`` with the fields of ``update_mask`` taken from ``patch`` (AIP-134).

    Raises:
        errors.InvalidArgument: A path that cannot be updated (reason ``INVALID_UPDATE_MASK``).
    """
    paths = list(update_mask.paths) if update_mask is not None else []
    if not paths:
        paths = [p for p in UPDATABLE_FIELDS if _populated(patch, p)]
    for path in paths:
        if path not in UPDATABLE_FIELDS:
            raise errors.InvalidArgument(
                "update_mask",
                f"{path!r} cannot be updated (one of {', '.join(UPDATABLE_FIELDS)})",
                reason="INVALID_UPDATE_MASK",
            )
    chosen = set(paths)
    changes: dict[str, Any] = {"updated": now}
    simple = {
        "display_name": ("name", patch.display_name),
        "description": ("description", patch.description),
        "enabled": ("enabled", patch.enabled if patch.HasField("enabled") else True),
        "template": ("template", patch.template),
        "strict": ("strict", patch.strict),
        "rate_limit": ("rate_limit", patch.rate_limit),
    }
    for path, (attribute, value) in simple.items():
        if path in chosen:
            changes[attribute] = value
    auth_paths = {p for p in chosen if p == "auth" or p.startswith("auth.")}
    if auth_paths:
        base = webhooks.WebhookAuth() if "auth" in auth_paths else current.auth
        changes["auth"] = auth_from_proto(patch.auth, base, auth_paths)
    return dataclasses.replace(current, **changes)


def webhook_to_proto(webhook: webhooks.Webhook, *, base_url: str) -> webhook_pb2.Webhook:
    """The ``Webhook`` message of a stored (or validated) webhook; no secret goes out."""
    auth = webhook.auth
    message = webhook_pb2.Webhook(
        name=webhook_name(webhook.id) if webhook.id else "",
        uid=webhook.id,
        display_name=webhook.name,
        description=webhook.description,
        enabled=webhook.enabled,
        template=webhook.template,
        strict=webhook.strict,
        slug=webhook.slug,
        url=f"{base_url.rstrip('/')}/hooks/{webhook.slug}" if webhook.slug else "",
        rate_limit=webhook.rate_limit,
        auth=webhook_pb2.WebhookAuth(
            bearer_token_set=bool(auth.bearer_token_hash),
            signature_scheme=_SCHEME_VALUES[auth.signature_scheme],
            signing_secret_set=bool(auth.signing_secret),
            signature_header=auth.signature_header,
            timestamp_tolerance=structs.seconds_to_duration(auth.tolerance_seconds),
        ),
        etag=etag(webhook),
    )
    if webhook.created:
        structs.set_timestamp(message.create_time, webhook.created)
        structs.set_timestamp(message.update_time, webhook.updated)
    return message


def delivery_to_proto(delivery: webhooks.Delivery) -> webhook_pb2.WebhookDelivery:
    """The ``WebhookDelivery`` message of a recorded delivery."""
    message = webhook_pb2.WebhookDelivery(
        name=delivery_name(delivery.webhook_id, delivery.id),
        method=delivery.method,
        status_code=delivery.status,
        error=delivery.error,
        rendered=delivery.rendered,
        headers=dict(delivery.headers),
        event_ids=list(delivery.event_ids),
        duration=structs.seconds_to_duration(delivery.duration),
    )
    structs.set_timestamp(message.receive_time, delivery.received)
    return message


def scheme_name(value: int) -> str:
    """The scheme's JSON name (``github``, ``none``...) of a ``SignatureScheme`` value."""
    scheme: webhooks.SignatureScheme = _SCHEMES.get(value, webhooks.SignatureScheme.NONE)  # type: ignore[call-overload]
    return scheme.value


def scheme_value(name: str) -> webhook_pb2.SignatureScheme.ValueType:
    """The ``SignatureScheme`` value of a scheme's JSON name.

    Raises:
        errors.InvalidArgument: An unknown name.
    """
    try:
        return _SCHEME_VALUES[webhooks.SignatureScheme(name)]
    except ValueError:
        choices = ", ".join(s.value for s in webhooks.SignatureScheme)
        raise errors.InvalidArgument(
            "auth.signature_scheme", f"{name!r} is not one of {choices}"
        ) from None


def _time(timestamp: Any) -> str:
    return timestamp.ToJsonString() if timestamp.seconds or timestamp.nanos else ""


def webhook_to_json(message: webhook_pb2.Webhook) -> dict[str, Any]:
    """A ``Webhook`` message as the command line and the client show it."""
    auth = message.auth
    return {
        "id": message.uid,
        "name": message.display_name,
        "description": message.description,
        "enabled": message.enabled,
        "template": message.template,
        "strict": message.strict,
        "slug": message.slug,
        "url": message.url,
        "rate_limit": message.rate_limit,
        "auth": {
            "bearer_token": auth.bearer_token_set,
            "signature_scheme": scheme_name(auth.signature_scheme),
            "signing_secret": auth.signing_secret_set,
            "signature_header": auth.signature_header,
            "timestamp_tolerance": structs.duration_to_seconds(auth.timestamp_tolerance),
        },
        "created": _time(message.create_time),
        "updated": _time(message.update_time),
    }


def delivery_to_json(message: webhook_pb2.WebhookDelivery) -> dict[str, Any]:
    """A ``WebhookDelivery`` message as the command line and the client show it."""
    return {
        "id": message.name.rsplit("/", 1)[-1],
        "received": _time(message.receive_time),
        "method": message.method,
        "status": message.status_code,
        "error": message.error,
        "rendered": message.rendered,
        "headers": dict(message.headers),
        "event_ids": list(message.event_ids),
        "duration": structs.duration_to_seconds(message.duration),
    }
