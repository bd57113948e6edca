"""``from_cloud_event(headers)``: a CloudEvent (structured, binary or batched) as a Prefect event.

Prefect's webhook template ``{{ body|from_cloud_event(headers) }}`` turns a CloudEvents 1.0 request
into an event:

* the event name is the CloudEvent's ``type``; ``occurred`` its ``time`` when it has one;
* the resource is ``{"prefect.resource.id": subject}``, or ``source`` when there is no subject;
* ``payload["data"]`` is its ``data`` (``data_base64`` decoded when it is UTF-8 text), and
  ``payload["cloudevents"]`` every other attribute (``id``, ``source``, ``specversion``,
  extensions...);
* its ``id`` is derived from the CloudEvent's ``source`` and ``id`` (unique together, by the
  spec), so a redelivered CloudEvent is a duplicate, not a second event.

Structured mode: the body is the CloudEvent as JSON (``application/cloudevents+json``). Binary
mode: the attributes are ``ce-*`` headers and the body is the data (its ``Content-Type`` is the
``datacontenttype``). Batched mode: the body is a JSON array of CloudEvents, rendered as a JSON
array of events (a batch). The filter returns JSON text: use it as the whole template.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping
from typing import Any

_NAMESPACE = uuid.UUID("5b2c0d5e-8f0a-4c1e-9b6e-0c1d2e3f4a5b")
"""The UUIDv5 namespace of event ids derived from CloudEvents."""

_HEADER_PREFIX = "ce-"


class NotACloudEvent(ValueError):
    """The request carries no CloudEvent (neither structured nor binary)."""


def _event(attributes: Mapping[str, Any], data: Any) -> dict[str, Any]:
    kind = attributes.get("type")
    source = attributes.get("source")
    if not isinstance(kind, str) or not kind:
        raise NotACloudEvent("the CloudEvent has no 'type'")
    if not isinstance(source, str) or not source:
        raise NotACloudEvent("the CloudEvent has no 'source'")
    subject = attributes.get("subject")
    metadata = {k: v for k, v in attributes.items() if k not in ("data", "data_base64")}
    event: dict[str, Any] = {
        "event": kind,
        "resource": {
            "prefect.resource.id": subject if isinstance(subject, str) and subject else source
        },
        "payload": {"data": data, "cloudevents": metadata},
    }
    ce_id = attributes.get("id")
    if isinstance(ce_id, str) and ce_id:
        event["id"] = str(uuid.uuid5(_NAMESPACE, f"{source}\x00{ce_id}"))
    time = attributes.get("time")
    if isinstance(time, str) and time:
        event["occurred"] = time
    return event


def _structured(body: Mapping[str, Any]) -> dict[str, Any]:
    data: Any = body.get("data")
    encoded = body.get("data_base64")
    if data is None and isinstance(encoded, str):
        try:
            raw = base64.b64decode(encoded, validate=True)
            data = raw.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            data = encoded
    return _event(body, data)


def _binary(body: Any, headers: Mapping[str, str]) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        key[len(_HEADER_PREFIX) :]: value
        for key, value in headers.items()
        if key.lower().startswith(_HEADER_PREFIX)
    }
    content_type = headers.get("content-type")
    if content_type:
        attributes.setdefault("datacontenttype", content_type)
    return _event(attributes, body)


def to_events(body: Any, headers: Mapping[str, str]) -> dict[str, Any] | list[dict[str, Any]]:
    """The Prefect event(s) of a CloudEvents request.

    Raises:
        NotACloudEvent: Neither the body nor the headers hold a CloudEvent.
    """
    if isinstance(body, list):
        if not all(isinstance(item, Mapping) and "specversion" in item for item in body):
            raise NotACloudEvent("a batch must be a JSON array of CloudEvents")
        return [_structured(item) for item in body]
    if isinstance(body, Mapping) and "specversion" in body:
        return _structured(body)
    if headers.get("ce-specversion"):
        return _binary(body, headers)
    raise NotACloudEvent(
        "the request is not a CloudEvent: no 'specversion' in the JSON body (structured mode) "
        "and no 'ce-specversion' header (binary mode)"
    )


def from_cloud_event(body: Any, headers: Mapping[str, str]) -> str:
    """The ``from_cloud_event`` filter: the event(s) of a CloudEvents request, as JSON text."""
    return json.dumps(to_events(body, headers))
