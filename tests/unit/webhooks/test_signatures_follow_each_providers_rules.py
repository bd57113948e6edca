from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from automations.domain import webhooks
from automations.webhooks import requests, signatures

NOW = 1_800_000_000.0
SECRET = "s3cret-value"


def _hook(scheme: webhooks.SignatureScheme, **auth: object) -> webhooks.Webhook:
    return webhooks.Webhook(
        id="w",
        name="n",
        template="{}",
        slug="s",
        auth=webhooks.WebhookAuth(signature_scheme=scheme, signing_secret=SECRET, **auth),  # type: ignore[arg-type]
    )


def _request(body: bytes, headers: dict[str, str]) -> requests.Request:
    return requests.Request("POST", requests.Headers(headers.items()), body)


def _hex(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def test_github_accepts_its_signature_and_returns_the_delivery_id() -> None:
    body = b'{"a": 1}'
    request = _request(
        body,
        {"X-Hub-Signature-256": "sha256=" + _hex(SECRET.encode(), body), "X-GitHub-Delivery": "d1"},
    )
    assert signatures.authenticate(_hook(webhooks.SignatureScheme.GITHUB), request, now=NOW) == "d1"


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"X-Hub-Signature-256": "sha256=00"}, 403)],
)
def test_github_refuses_a_missing_or_wrong_signature(headers: dict[str, str], status: int) -> None:
    with pytest.raises(signatures.AuthFailed) as caught:
        signatures.authenticate(
            _hook(webhooks.SignatureScheme.GITHUB), _request(b"{}", headers), now=NOW
        )
    assert caught.value.status == status


def test_stripe_checks_the_timestamp_tolerance_and_takes_the_event_id() -> None:
    body = json.dumps({"id": "evt_1"}).encode()
    hook = _hook(webhooks.SignatureScheme.STRIPE)

    def header(ts: int) -> dict[str, str]:
        signature = _hex(SECRET.encode(), f"{ts}.".encode() + body)
        return {"Stripe-Signature": f"t={ts},v1=deadbeef,v1={signature}"}

    assert signatures.authenticate(hook, _request(body, header(int(NOW) - 299)), now=NOW) == "evt_1"
    with pytest.raises(signatures.AuthFailed) as caught:
        signatures.authenticate(hook, _request(body, header(int(NOW) - 301)), now=NOW)
    assert caught.value.status == 403 and "replay" in caught.value.message


def test_slack_signs_version_timestamp_and_body() -> None:
    body = b'{"event_id": "Ev1"}'
    ts = str(int(NOW))
    signature = "v0=" + _hex(SECRET.encode(), f"v0:{ts}:".encode() + body)
    request = _request(body, {"X-Slack-Signature": signature, "X-Slack-Request-Timestamp": ts})
    assert signatures.authenticate(_hook(webhooks.SignatureScheme.SLACK), request, now=NOW) == "Ev1"


def test_standard_webhooks_use_the_base64_key_after_whsec() -> None:
    key = b"0123456789abcdef"
    hook = webhooks.Webhook(
        id="w",
        name="n",
        template="{}",
        slug="s",
        auth=webhooks.WebhookAuth(
            signature_scheme=webhooks.SignatureScheme.STANDARD_WEBHOOKS,
            signing_secret="whsec_" + base64.b64encode(key).decode(),
        ),
    )
    body = b"{}"
    ts = str(int(NOW))
    digest = hmac.new(key, f"msg_1.{ts}.".encode() + body, hashlib.sha256).digest()
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": ts,
        "webhook-signature": "v1,AAAA v1," + base64.b64encode(digest).decode(),
    }
    assert signatures.authenticate(hook, _request(body, headers), now=NOW) == "msg_1"


def test_the_generic_scheme_reads_its_header_in_hex_or_base64() -> None:
    hook = _hook(webhooks.SignatureScheme.HMAC_SHA256, signature_header="X-Sig")
    body = b"payload"
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).digest()
    for value in (
        digest.hex(),
        "sha256=" + digest.hex().upper(),
        base64.b64encode(digest).decode(),
    ):
        assert signatures.authenticate(hook, _request(body, {"x-sig": value}), now=NOW) is None


def test_a_bearer_token_is_compared_with_its_hash() -> None:
    hook = webhooks.Webhook(
        id="w",
        name="n",
        template="{}",
        slug="s",
        auth=webhooks.WebhookAuth(bearer_token_hash=webhooks.hash_token("a-long-enough-token")),
    )
    ok = _request(b"", {"Authorization": "Bearer a-long-enough-token"})
    assert signatures.authenticate(hook, ok, now=NOW) is None
    for headers, status in (({}, 401), ({"Authorization": "Bearer other-token-value"}, 403)):
        with pytest.raises(signatures.AuthFailed) as caught:
            signatures.authenticate(hook, _request(b"", headers), now=NOW)
        assert caught.value.status == status
    assert "a-long-enough-token" not in hook.auth.bearer_token_hash
