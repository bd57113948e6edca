"""Authentication and replay protection over real HTTP: bearer tokens, provider signatures
(computed here from the providers' documented algorithms), replays and rate limits."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path

import httpx

import automations
from tests.integration.engine_process import EngineProcess
from tests.integration.webhooks.conftest import events_named, github_signature, stripe_signature


def _template(name: str) -> str:
    return '{"event": "' + name + '", "resource": {"prefect.resource.id": "r.{{ body.n }}"}}'


def _name() -> str:
    return f"auth.{uuid.uuid4().hex[:12]}"


def test_a_bearer_token_is_required_checked_and_never_stored_in_clear(
    api: automations.Client, http: httpx.Client, hooks_engine: EngineProcess
) -> None:
    name = _name()
    token = "tok-" + uuid.uuid4().hex
    hook = api.create_webhook("bearer", _template(name), bearer_token=token)
    assert hook["auth"]["bearer_token"] is True
    missing = http.post(hook["url"], json={"n": 1})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = http.post(hook["url"], json={"n": 1}, headers={"Authorization": "Bearer nope-nope"})
    assert wrong.status_code == 403
    ok = http.post(hook["url"], json={"n": 1}, headers={"Authorization": f"bearer {token}"})
    assert ok.status_code == 204
    (event,) = events_named(api, name)
    assert "authorization" not in event["payload"]["headers"]
    for stored in Path(hooks_engine.workdir).glob("automations.db*"):  # the WAL too
        assert token.encode() not in stored.read_bytes()
    assert token not in json.dumps(api.get_webhook(hook["id"]))


def test_github_signatures_are_verified_and_a_redelivery_is_a_duplicate(
    api: automations.Client, http: httpx.Client
) -> None:
    name = _name()
    secret = "gh-" + uuid.uuid4().hex
    hook = api.create_webhook(
        "github", _template(name), signature_scheme="github", signing_secret=secret
    )
    body = json.dumps({"n": 7}).encode()
    delivery = str(uuid.uuid4())
    headers = {
        "content-type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
    }
    assert http.post(hook["url"], content=body, headers=headers).status_code == 401
    forged = {**headers, "X-Hub-Signature-256": github_signature("wrong", body)}
    assert http.post(hook["url"], content=body, headers=forged).status_code == 403
    signed = {**headers, "X-Hub-Signature-256": github_signature(secret, body)}
    assert http.post(hook["url"], content=body, headers=signed).status_code == 204
    tampered = body.replace(b"7", b"8")
    assert http.post(hook["url"], content=tampered, headers=signed).status_code == 403
    # GitHub's "redeliver": the same delivery id and signature, answered 204, no second event
    assert http.post(hook["url"], content=body, headers=signed).status_code == 204
    events = events_named(api, name)
    assert len(events) == 1
    assert events[0]["payload"]["headers"]["x-hub-signature-256"] == "****"
    statuses = [d["status"] for d in api.list_webhook_deliveries(hook["id"])]
    assert statuses == [204, 403, 204, 403, 401]


def test_stripe_signatures_are_verified_with_a_timestamp_tolerance(
    api: automations.Client, http: httpx.Client
) -> None:
    name = _name()
    secret = "whsec_" + uuid.uuid4().hex
    hook = api.create_webhook(
        "stripe", _template(name), signature_scheme="stripe", signing_secret=secret
    )
    body = json.dumps(
        {"id": "evt_" + uuid.uuid4().hex, "type": "charge.succeeded", "n": 1}
    ).encode()
    fresh = {"Stripe-Signature": stripe_signature(secret, body)}
    assert http.post(hook["url"], content=body, headers=fresh).status_code == 204
    # Stripe retries the same event with a new timestamp and signature: a duplicate
    time.sleep(1.1)
    retried = {"Stripe-Signature": stripe_signature(secret, body)}
    assert http.post(hook["url"], content=body, headers=retried).status_code == 204
    assert len(events_named(api, name)) == 1
    # a captured request replayed after the tolerance (5 minutes) is refused
    old = {"Stripe-Signature": stripe_signature(secret, body, int(time.time()) - 600)}
    reply = http.post(hook["url"], content=body, headers=old)
    assert reply.status_code == 403
    assert "replay" in reply.json()["error"]
    wrong = {"Stripe-Signature": stripe_signature("whsec_other", body)}
    assert http.post(hook["url"], content=body, headers=wrong).status_code == 403
    assert len(events_named(api, name)) == 1


def test_standard_webhooks_signatures_are_verified(
    api: automations.Client, http: httpx.Client
) -> None:
    name = _name()
    key = uuid.uuid4().bytes
    secret = "whsec_" + base64.b64encode(key).decode()
    hook = api.create_webhook(
        "std", _template(name), signature_scheme="standard-webhooks", signing_secret=secret
    )
    body = b'{"n": 3}'
    message_id = "msg_" + uuid.uuid4().hex
    timestamp = str(int(time.time()))
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": "v1,bm90LXRoaXM= v1," + base64.b64encode(digest).decode(),
    }
    assert http.post(hook["url"], content=body, headers=headers).status_code == 204
    assert http.post(hook["url"], content=body, headers=headers).status_code == 204
    assert len(events_named(api, name)) == 1
    bad = {**headers, "webhook-signature": "v1,bm90LXRoaXM="}
    assert http.post(hook["url"], content=body, headers=bad).status_code == 403


def test_a_rate_limited_webhook_answers_429_with_retry_after(
    api: automations.Client, http: httpx.Client
) -> None:
    name = _name()
    hook = api.create_webhook("limited", _template(name), rate_limit=2)
    codes = [http.post(hook["url"], json={"n": i}).status_code for i in range(5)]
    assert codes[:2] == [204, 204]
    assert 429 in codes
    limited = http.post(hook["url"], json={"n": 9})
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
