"""From a rendered template to events: Prefect's rules, then the checks of ``PublishEvents``.

The rendered text must be JSON: an object (one event) or a non-empty array of objects (a batch,
e.g. an Event Grid delivery). Each object needs ``event`` and ``resource["prefect.resource.id"]``;
resource and related labels must be strings (quote numbers: ``"n": "{{ body.n }}"``). What the
template sets of ``id``, ``occurred``, ``related``, ``payload`` and ``follows`` is kept; other keys
are ignored (Prefect's ``extra="ignore"``). Then, as Prefect Cloud does:

* ``occurred`` defaults to the time the request arrived, ``payload`` to ``{method, headers,
  body}`` (headers with secrets masked);
* the webhook is appended to ``related`` as ``prefect-cloud.webhook.<id>`` in the role
  ``webhook``, named after the webhook, so Prefect automations matching on it port unchanged;
* ``id`` defaults to one derived from the provider's delivery id (``signatures``), so that a
  provider's retry is a duplicate; without one, a new UUIDv7 (time-ordered, as Prefect's
  client makes them: cheap to append to the event log's index).

Every event then passes ``domain.validation.validate_event``, the check ``PublishEvents`` makes;
a failure names the field (``[2].resource``: the third event of a batch).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from automations.domain import errors, events, ids, validation, webhooks
from automations.webhooks import requests

MAX_EVENTS_PER_REQUEST = 1000
"""The most events one request may produce."""
MAX_FAILURE_TEXT = 64 * 1024
"""The longest body or rendered text kept in a ``webhook.failed`` event or a delivery record."""

_BYTES_PER_CHARACTER = 5
"""More than the compact JSON of a parsed text can take per character of the text (4.5)."""

_NAMESPACE = uuid.UUID("a3d7f0c2-41b6-4f0e-8a57-2f6c1d9e0b44")
"""The UUIDv5 namespace of event ids derived from delivery ids."""


class Invalid(Exception):
    """The rendered text is not valid JSON, or not valid events.

    Attributes:
        message: What is wrong, naming the field.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def delivery_event_id(webhook_id: str, delivery_id: str, index: int) -> str:
    """The deterministic id of the ``index``-th event of a provider's delivery."""
    return str(uuid.uuid5(_NAMESPACE, f"{webhook_id}\x00{delivery_id}\x00{index}"))


def _labels(value: Any, prefix: str, field: str) -> dict[str, str]:
    """``value`` checked as labels; ``prefix + field`` names it in an error."""
    if type(value) is not dict:  # parsed by orjson: an object is a dict
        raise Invalid(f"{prefix}{field}: must be an object of string labels")
    for key, item in value.items():
        if type(item) is not str:
            raise Invalid(
                f"{prefix}{field}[{key!r}]: label values must be strings, got "
                f'{type(item).__name__} (quote it in the template: "{key}": "{{{{ ... }}}}")'
            )
    return value  # parsed for this request alone: nobody else holds it


def _occurred(value: Any, field: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise Invalid(f"{field}: {value[:100]!r} is not an ISO 8601 time") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.timestamp()
    raise Invalid(f"{field}: must be an ISO 8601 time")


def _one(
    item: Any,
    index: int,
    prefix: str,
    *,
    webhook: webhooks.Webhook,
    payload: Callable[[], dict[str, Any]],
    delivery_id: str | None,
    now: float,
    measure: bool,
) -> events.Event:
    if type(item) is not dict:  # parsed by orjson: an object is a dict
        raise Invalid(
            f"{prefix or 'the template'}: must render a JSON object with 'event' and 'resource', "
            f"got {type(item).__name__}"
        )
    name = item.get("event")
    if type(name) is not str or not name:
        raise Invalid(f"{prefix}event: is required (a non-empty string)")
    resource = _labels(item.get("resource"), prefix, "resource")
    related_in = item.get("related")
    if not related_in:
        related = []
    elif type(related_in) is not list:
        raise Invalid(f"{prefix}related: must be an array of objects")
    else:
        related = [_labels(r, prefix, f"related[{i}]") for i, r in enumerate(related_in)]
    related.append(
        {
            events.RESOURCE_ID: webhook.resource_id,
            events.RESOURCE_ROLE: webhooks.RELATED_ROLE,
            events.RESOURCE_NAME: webhook.name,
        }
    )
    event_id = item.get("id")
    if event_id is None or event_id == "":
        event_id = delivery_event_id(webhook.id, delivery_id, index) if delivery_id else ids.uuid7()
    elif type(event_id) is not str:
        raise Invalid(f"{prefix}id: must be a string")
    follows = item.get("follows")
    if follows is not None and type(follows) is not str:
        raise Invalid(f"{prefix}follows: must be a string")
    own_payload = item.get("payload")
    if own_payload is not None and type(own_payload) is not dict:
        raise Invalid(f"{prefix}payload: must be an object")
    occurred = item.get("occurred")
    event = events.Event(
        id=event_id,
        event=name,
        occurred=now if occurred is None else _occurred(occurred, f"{prefix}occurred"),
        resource=resource,
        related=tuple(related),
        payload=payload() if own_payload is None else own_payload,
        follows=follows or None,
        received=now,
    )
    try:
        validation.validate_event(event, size=len(orjson.dumps(item)) if measure else None)
    except errors.InvalidArgument as exc:
        raise Invalid(exc.under(prefix.rstrip(".")).message) from None
    return event


def build_events(
    rendered: str,
    *,
    webhook: webhooks.Webhook,
    ctx: Mapping[str, Any],
    headers: Mapping[str, str],
    delivery_id: str | None,
    now: float,
) -> list[events.Event]:
    """The events a rendered template describes (see the module docstring).

    Args:
        rendered: The template's output.
        webhook: The webhook (its related resource, its id for derived event ids).
        ctx: The template context (for the default payload).
        headers: The request's headers (masked for the default payload).
        delivery_id: The provider's delivery id, if any.
        now: When the request arrived.

    Raises:
        Invalid: Not JSON, not events, or an event ``PublishEvents`` would reject.
    """
    try:
        parsed = orjson.loads(rendered)
    except orjson.JSONDecodeError as exc:
        raise Invalid(f"the template did not render valid JSON: {exc}") from None
    masked: dict[str, str] | None = None  # once, if ever
    # An event's size (its compact JSON) is measured only when it could be over the limit: the
    # compact JSON of a parsed text is at most 4.5 bytes per character of the text (4 for a
    # character in UTF-8, 4.5 for a number such as 1e15, printed 1000000000000000.0).
    measure = len(rendered) * _BYTES_PER_CHARACTER > events.MAX_EVENT_SIZE_BYTES

    def payload() -> dict[str, Any]:  # made only for an event whose template sets none
        nonlocal masked
        if masked is None:
            masked = requests.masked_headers(headers)
        return requests.default_payload(ctx, masked)

    if type(parsed) is not list:
        return [
            _one(
                parsed,
                0,
                "",
                webhook=webhook,
                payload=payload,
                delivery_id=delivery_id,
                now=now,
                measure=measure,
            )
        ]
    if not parsed:
        raise Invalid("the template rendered an empty array: no events")
    if len(parsed) > MAX_EVENTS_PER_REQUEST:
        raise Invalid(
            f"the template rendered {len(parsed)} events; at most {MAX_EVENTS_PER_REQUEST} "
            "per request"
        )
    return [
        _one(
            item,
            i,
            f"[{i}].",
            webhook=webhook,
            payload=payload,
            delivery_id=delivery_id,
            now=now,
            measure=measure,
        )
        for i, item in enumerate(parsed)
    ]


def cut(text: str, limit: int = MAX_FAILURE_TEXT) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters in all)"


def failed_event(
    webhook: webhooks.Webhook,
    *,
    method: str,
    headers: Mapping[str, str],
    body: Any,
    raw_body: str,
    rendered: str,
    error: str,
    now: float,
) -> events.Event:
    """Prefect Cloud's ``prefect-cloud.webhook.failed`` event for a request.

    Its payload is ``{method, headers, body, rendered, error}``: headers masked, texts cut to
    ``MAX_FAILURE_TEXT``.
    """
    kept_body: Any = body
    if len(raw_body) > MAX_FAILURE_TEXT or isinstance(body, str):
        kept_body = cut(raw_body)
    event = events.Event(
        id=str(uuid.uuid4()),
        event=webhooks.FAILED_EVENT,
        occurred=now,
        resource={events.RESOURCE_ID: webhook.resource_id, events.RESOURCE_NAME: webhook.name},
        payload={
            "method": method,
            "headers": dict(headers),
            "body": kept_body,
            "rendered": cut(rendered),
            "error": error,
        },
        received=now,
    )
    try:
        validation.validate_event(event)
    except errors.InvalidArgument:  # e.g. a body nested too deep: keep it as text
        event.payload = {**event.payload, "body": cut(raw_body)}
    return event
