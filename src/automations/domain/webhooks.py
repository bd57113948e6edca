"""Incoming webhooks: the resource, its authentication settings and its delivery history.

A webhook turns HTTP requests to ``/hooks/<slug>`` into events through a template (Prefect
Cloud's webhooks). Its ``slug`` is an unguessable URL segment chosen by the server (22 characters
of URL-safe base64, 128 random bits, as Prefect Cloud's look); rotating it issues a new one.

Authentication is optional and twofold: a bearer token (stored only as a salted SHA-256 hash, so
that the database never holds it) and a signature scheme (the provider signs each request with a
shared secret, which must therefore be stored as given: an HMAC cannot be checked against a hash
of its key). Both secrets are input-only on the API and masked wherever they are shown.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import hmac
import secrets
from collections.abc import Mapping

from automations.domain import errors

RESOURCE_PREFIX = "prefect-cloud.webhook."
"""The prefix of a webhook's resource id, as in Prefect Cloud (``prefect-cloud.webhook.<id>``)."""
RELATED_ROLE = "webhook"
"""The role of the webhook among the related resources of the events it produces."""
FAILED_EVENT = "prefect-cloud.webhook.failed"
"""The event emitted when a request cannot be turned into events (Prefect Cloud's name)."""

SLUG_BYTES = 16
"""Random bytes in a slug: 128 bits, 22 characters of URL-safe base64."""
MAX_NAME_LENGTH = 256
"""The longest webhook name."""
MAX_TEMPLATE_LENGTH = 64 * 1024
"""The longest template, in characters."""
MIN_BEARER_TOKEN_LENGTH = 16
"""The shortest bearer token accepted: tokens are only stored hashed (one fast hash), so they
must carry enough entropy on their own."""
DEFAULT_TOLERANCE_SECONDS = 300.0
"""How far a signed request's timestamp may be from now (Stripe's, Slack's and Standard
Webhooks' default of five minutes)."""
MAX_TOLERANCE_SECONDS = 86400.0
"""The widest timestamp tolerance a webhook may set."""
DEFAULT_SIGNATURE_HEADER = "X-Signature-256"
"""The header the generic ``hmac-sha256`` scheme reads when the webhook names none."""


class SignatureScheme(enum.StrEnum):
    """How a webhook's requests are signed (``NONE``: they are not)."""

    NONE = "none"
    GITHUB = "github"
    """``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``."""
    STRIPE = "stripe"
    """``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``."""
    SLACK = "slack"
    """``X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:<ts>:<body>")>`` with
    ``X-Slack-Request-Timestamp``."""
    STANDARD_WEBHOOKS = "standard-webhooks"
    """``webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<ts>.<body>")>`` with
    ``webhook-id`` and ``webhook-timestamp`` (the secret is ``whsec_<base64 key>``)."""
    HMAC_SHA256 = "hmac-sha256"
    """A header (``signature_header``) holding HMAC-SHA256(secret, body), hex or base64,
    optionally prefixed ``sha256=``."""


@dataclasses.dataclass(frozen=True, slots=True)
class WebhookAuth:
    """How a webhook authenticates its requests.

    Attributes:
        bearer_token_hash: ``sha256$<salt hex>$<digest hex>`` of the token every request must
            send as ``Authorization: Bearer <token>``; empty: no token is required.
        signature_scheme: How requests are signed.
        signing_secret: The secret the provider signs with (stored as given; never shown).
        signature_header: The header of the ``hmac-sha256`` scheme (empty: the default).
        tolerance_seconds: How far a signed timestamp may be from now (schemes that sign one).
    """

    bearer_token_hash: str = ""
    signature_scheme: SignatureScheme = SignatureScheme.NONE
    signing_secret: str = ""
    signature_header: str = ""
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS


@dataclasses.dataclass(frozen=True, slots=True)
class Webhook:
    """An incoming webhook.

    Attributes:
        id: A UUID chosen by the server.
        name: The human-readable name (Prefect's ``name``).
        template: The Jinja template that renders a request into an event (or a JSON array of
            events).
        slug: The unguessable segment of its URL, ``/hooks/<slug>``.
        description: Free text.
        enabled: A disabled webhook answers 404, as an unknown one does.
        strict: A missing value in the template is an error (400) instead of rendering as "".
        rate_limit: Requests per second accepted (bursts up to one second's worth); 0: no limit.
        auth: Authentication settings.
        created: Creation time, seconds since the epoch.
        updated: Last change, seconds since the epoch.
        version: Bumped on every change (the etag).
    """

    id: str
    name: str
    template: str
    slug: str
    description: str = ""
    enabled: bool = True
    strict: bool = False
    rate_limit: float = 0.0
    auth: WebhookAuth = WebhookAuth()
    created: float = 0.0
    updated: float = 0.0
    version: int = 1

    @property
    def resource_id(self) -> str:
        """``prefect-cloud.webhook.<id>``: the webhook as an event resource."""
        return RESOURCE_PREFIX + self.id


@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    """One request a webhook received, as kept in its delivery history.

    Attributes:
        id: A UUID.
        webhook_id: The webhook.
        received: When it arrived, seconds since the epoch.
        method: The HTTP method.
        status: The HTTP status answered.
        duration: Seconds from receiving the request to answering it.
        error: Why it failed ("" on success).
        rendered: What the template rendered (cut to a few KiB; "" when it did not run).
        headers: The request's headers, secrets masked.
        event_ids: The ids of the events it produced (committed when ``status`` is 204).
    """

    id: str
    webhook_id: str
    received: float
    method: str
    status: int
    duration: float
    error: str = ""
    rendered: str = ""
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    event_ids: tuple[str, ...] = ()


def new_slug() -> str:
    """A fresh unguessable slug (128 random bits, URL-safe base64 without padding)."""
    return secrets.token_urlsafe(SLUG_BYTES)


def hash_token(token: str, *, salt: bytes | None = None) -> str:
    """Returns the stored form of a bearer token: ``sha256$<salt hex>$<digest hex>``."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.sha256(salt + token.encode("utf-8")).hexdigest()
    return f"sha256${salt.hex()}${digest}"


def token_matches(stored: str, token: str) -> bool:
    """Whether ``token`` is the one ``stored`` (from :func:`hash_token`) was made from."""
    kind, _, rest = stored.partition("$")
    salt_hex, _, digest = rest.partition("$")
    if kind != "sha256" or not digest:
        return False
    try:
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        return False
    candidate = hashlib.sha256(salt + token.encode("utf-8")).hexdigest()
    return hmac.compare_digest(candidate, digest)


def check_bearer_token(token: str, *, field: str = "auth.bearer_token") -> None:
    """Raises InvalidArgument unless ``token`` is printable ASCII of a safe length."""
    if len(token) < MIN_BEARER_TOKEN_LENGTH:
        raise errors.InvalidArgument(
            field,
            f"must be at least {MIN_BEARER_TOKEN_LENGTH} characters (it is stored hashed; use "
            "a random token)",
            reason="WEAK_BEARER_TOKEN",
        )
    if not (token.isascii() and token.isprintable() and " " not in token and len(token) <= 4096):
        raise errors.InvalidArgument(
            field, "must be printable ASCII without spaces, at most 4096 characters"
        )


def check_webhook(webhook: Webhook) -> None:
    """Checks a webhook's fields (the template's syntax is checked by the caller).

    Raises:
        errors.InvalidArgument: Naming the field.
    """
    if not webhook.name.strip():
        raise errors.InvalidArgument("display_name", "is required")
    if len(webhook.name) > MAX_NAME_LENGTH:
        raise errors.InvalidArgument("display_name", f"is longer than {MAX_NAME_LENGTH} characters")
    if not webhook.template.strip():
        raise errors.InvalidArgument(
            "template",
            'is required: a Jinja template rendering at least {"event": "...", "resource": '
            '{"prefect.resource.id": "..."}}',
        )
    if len(webhook.template) > MAX_TEMPLATE_LENGTH:
        raise errors.InvalidArgument("template", f"is longer than {MAX_TEMPLATE_LENGTH} characters")
    if not webhook.rate_limit >= 0 or webhook.rate_limit > 1e9:
        raise errors.InvalidArgument("rate_limit", "must be >= 0 (0: no limit)")
    auth = webhook.auth
    tolerance = auth.tolerance_seconds
    if not 0 < tolerance <= MAX_TOLERANCE_SECONDS:
        raise errors.InvalidArgument(
            "auth.timestamp_tolerance",
            f"must be more than 0 and at most {MAX_TOLERANCE_SECONDS:g}s",
        )
    scheme = auth.signature_scheme
    if scheme is not SignatureScheme.NONE and not auth.signing_secret:
        raise errors.InvalidArgument(
            "auth.signing_secret", f"is required by the {scheme.value!r} signature scheme"
        )
    if scheme is SignatureScheme.NONE and auth.signing_secret:
        raise errors.InvalidArgument(
            "auth.signature_scheme", "must be set when a signing secret is given"
        )
    if auth.signature_header and scheme is not SignatureScheme.HMAC_SHA256:
        raise errors.InvalidArgument(
            "auth.signature_header", "applies only to the 'hmac-sha256' signature scheme"
        )
    header = auth.signature_header
    if header and not (header.isascii() and all(c.isalnum() or c in "-_" for c in header)):
        raise errors.InvalidArgument("auth.signature_header", "must be an HTTP header name")
