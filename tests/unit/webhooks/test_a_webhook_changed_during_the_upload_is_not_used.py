"""A webhook disabled, deleted or rotated while a request's body arrives answers that request 404."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from automations.domain import events, webhooks
from automations.webhooks import deliveries, directory, http_app, receiver, workers

TEMPLATE = '{"event": "e", "resource": {"prefect.resource.id": "r.{{ body.n }}"}}'


async def _answer_while(change: Any) -> tuple[int, list[events.Event]]:
    hook = webhooks.Webhook(id="w", name="n", template=TEMPLATE, slug="slug")
    known = directory.Directory(None)
    known.replace([hook])
    published: list[events.Event] = []

    async def publish(batch: Sequence[events.Event], prepared: Any) -> list[bool]:
        published.extend(batch)
        return [True] * len(batch)

    async def write(batch: Sequence[webhooks.Delivery]) -> None:
        return None

    pool = workers.WorkerPool(1)
    pool.start()
    rec = receiver.Receiver(known, publish, pool, deliveries.DeliveryLog(write, keep=10))
    app = http_app.build_app(rec)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        change(known, hook)  # while the body is on its way
        return {"type": "http.request", "body": b'{"n": 1}', "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/hooks/slug",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
    }
    try:
        await app(scope, receive, send)
    finally:
        pool.stop()
    return sent[0]["status"], published


async def test_a_webhook_deleted_meanwhile_gets_404_and_nothing_is_published() -> None:
    status, published = await _answer_while(lambda known, hook: known.replace([]))
    assert status == 404 and published == []


async def test_a_webhook_disabled_meanwhile_gets_404() -> None:
    status, published = await _answer_while(
        lambda known, hook: known.replace([dataclasses.replace(hook, enabled=False)])
    )
    assert status == 404 and published == []


async def test_a_webhook_unchanged_meanwhile_is_committed() -> None:
    status, published = await _answer_while(lambda known, hook: None)
    assert status == 204 and [e.resource["prefect.resource.id"] for e in published] == ["r.1"]
