"""Authenticating a webhook request: a bearer token and the providers' signature schemes.

A webhook may require a bearer token (``Authorization: Bearer <token>``, compared with its stored
hash) and a signature (``domain.webhooks.SignatureScheme``); with both, both must pass. A request
without the credentials a webhook requires is answered 401; one whose credentials are wrong, or
whose signed timestamp is further from now than the webhook's tolerance (a replay), 403.

Each scheme follows its provider's documentation:

=====================  =================================================================
github                 ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``;
                       delivery id ``X-GitHub-Delivery``
stripe                 ``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret,
                       "<t>.<body>")>`` (any ``v1`` may match: secrets being rolled);
                       delivery id: the body's ``id`` (``evt_...``)
slack                  ``X-Slack-Signature: v0=<hex HMAC-SHA256(secret,
                       "v0:<ts>:<body>")>``, ``X-Slack-Request-Timestamp: <ts>``;
                       delivery id: the body's ``event_id`` (Events API)
standard-webhooks      ``webhook-signature: v1,<base64 HMAC-SHA256(key,
                       "<webhook-id>.<webhook-timestamp>.<body>")>`` (space-separated
                       list), the key being the base64 after ``whsec_``; delivery id
                       ``webhook-id``
hmac-sha256            ``<signature_header>: [sha256=]<hex or base64 HMAC-SHA256(secret,
                       body)>``; no delivery id
=====================  =================================================================

The delivery id is what a provider sends again when it retries: the events a request produces get
ids derived from it (``rendering``), so a retry is a duplicate instead of a second event.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

import orjson

from automations.domain import webhooks
from automations.webhooks import requests

Scheme = webhooks.SignatureScheme


class AuthFailed(Exception):
    """The request is not authenticated.

    Attributes:
        status: 401 (credentials missing) or 403 (wrong, or a replay outside the tolerance).
        message: Why, without any secret.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _required(headers: requests.Headers, name: str) -> str:
    value = headers.get(name)
    if not value:
        raise AuthFailed(401, f"the {name} header is missing")
    return str(value)


def _check_time(timestamp: str, now: float, tolerance: float, name: str) -> None:
    try:
        sent = float(int(timestamp.strip()))
    except ValueError:
        raise AuthFailed(403, f"the {name} timestamp is not a number of seconds") from None
    if abs(now - sent) > tolerance:
        raise AuthFailed(
            403, f"the {name} timestamp is more than {tolerance:g}s from now (a replay?)"
        )


def _body_field(body: bytes, field: str) -> str | None:
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    value = parsed.get(field) if isinstance(parsed, dict) else None
    return value if isinstance(value, str) and value else None


def _mismatch(scheme: Scheme) -> AuthFailed:
    return AuthFailed(403, f"the {scheme.value} signature does not match")


def _github(secret: bytes, request: requests.Request) -> str | None:
    header = _required(request.headers, "X-Hub-Signature-256")
    expected = "sha256=" + _hmac_sha256(secret, request.body).hex()
    if not hmac.compare_digest(expected.encode(), header.strip().lower().encode()):
        raise _mismatch(Scheme.GITHUB)
    delivery = request.headers.get("x-github-delivery")
    return str(delivery) if delivery else None


def _stripe(secret: bytes, request: requests.Request, now: float, tolerance: float) -> str | None:
    header = _required(request.headers, "Stripe-Signature")
    timestamp = ""
    signatures: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            signatures.append(value.lower())
    if not timestamp or not signatures:
        raise AuthFailed(403, "the Stripe-Signature header has no t= or no v1= element")
    _check_time(timestamp, now, tolerance, "Stripe-Signature")
    expected = _hmac_sha256(secret, timestamp.encode() + b"." + request.body).hex().encode()
    if not any(hmac.compare_digest(expected, s.encode()) for s in signatures):
        raise _mismatch(Scheme.STRIPE)
    return _body_field(request.body, "id")


def _slack(secret: bytes, request: requests.Request, now: float, tolerance: float) -> str | None:
    timestamp = _required(request.headers, "X-Slack-Request-Timestamp")
    header = _required(request.headers, "X-Slack-Signature")
    _check_time(timestamp, now, tolerance, "X-Slack-Request-Timestamp")
    base = b"v0:" + timestamp.strip().encode() + b":" + request.body
    expected = ("v0=" + _hmac_sha256(secret, base).hex()).encode()
    if not hmac.compare_digest(expected, header.strip().lower().encode()):
        raise _mismatch(Scheme.SLACK)
    return _body_field(request.body, "event_id")


def standard_webhooks_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: the base64 after ``whsec_``.

    A secret that is not base64 is used as its UTF-8 bytes.
    """
    encoded = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return secret.encode("utf-8")


def _standard(secret: str, request: requests.Request, now: float, tolerance: float) -> str:
    message_id = _required(request.headers, "webhook-id")
    timestamp = _required(request.headers, "webhook-timestamp")
    header = _required(request.headers, "webhook-signature")
    _check_time(timestamp, now, tolerance, "webhook-timestamp")
    signed = f"{message_id}.{timestamp.strip()}.".encode() + request.body
    expected = base64.b64encode(_hmac_sha256(standard_webhooks_key(secret), signed))
    for item in header.split():
        version, _, signature = item.partition(",")
        if version == "v1" and hmac.compare_digest(expected, signature.encode()):
            return message_id
    raise _mismatch(Scheme.STANDARD_WEBHOOKS)


def _generic(secret: bytes, header_name: str, request: requests.Request) -> None:
    header = _required(request.headers, header_name).strip()
    if header.lower().startswith("sha256="):
        header = header[len("sha256=") :]
    digest = _hmac_sha256(secret, request.body)
    as_hex = digest.hex().encode()
    as_base64 = base64.b64encode(digest)
    given = header.encode()
    if not (hmac.compare_digest(as_hex, given.lower()) or hmac.compare_digest(as_base64, given)):
        raise _mismatch(Scheme.HMAC_SHA256)


def _bearer(stored_hash: str, request: requests.Request) -> None:
    header = request.headers.get("authorization")
    if not header:
        raise AuthFailed(401, "this webhook requires 'Authorization: Bearer <token>'")
    scheme, _, token = str(header).strip().partition(" ")
    if scheme.lower() != "bearer" or not webhooks.token_matches(stored_hash, token.strip()):
        raise AuthFailed(403, "the bearer token is wrong")


def authenticate(webhook: webhooks.Webhook, request: requests.Request, *, now: float) -> str | None:
    """Checks a request against the webhook's authentication settings.

    Args:
        webhook: The webhook.
        request: The request.
        now: The current time, seconds since the epoch (for timestamp tolerances).

    Returns:
        The provider's delivery id when the scheme has one and the request carries it.

    Raises:
        AuthFailed: With 401 or 403 and the reason.
    """
    auth = webhook.auth
    if auth.bearer_token_hash:
        _bearer(auth.bearer_token_hash, request)
    scheme = auth.signature_scheme
    if scheme is Scheme.NONE:
        return None
    secret = auth.signing_secret.encode("utf-8")
    tolerance = auth.tolerance_seconds
    if scheme is Scheme.GITHUB:
        return _github(secret, request)
    if scheme is Scheme.STRIPE:
        return _stripe(secret, request, now, tolerance)
    if scheme is Scheme.SLACK:
        return _slack(secret, request, now, tolerance)
    if scheme is Scheme.STANDARD_WEBHOOKS:
        return _standard(auth.signing_secret, request, now, tolerance)
    _generic(secret, auth.signature_header or webhooks.DEFAULT_SIGNATURE_HEADER, request)
    return None
