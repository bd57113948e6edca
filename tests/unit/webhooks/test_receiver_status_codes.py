"""The receiver's answers with fakes for the writer: backpressure, draining, lookups, limits."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from automations.domain import errors, events, webhooks
from automations.webhooks import deliveries, directory, receiver, requests, workers

TEMPLATE = '{"event": "e", "resource": {"prefect.resource.id": "r.{{ body.n }}"}}'


class FakeWriter:
    def __init__(self, error: errors.AutomationsError | None = None) -> None:
        self.error = error
        self.published: list[events.Event] = []

    async def publish(self, batch: Sequence[events.Event], prepared: Any) -> list[bool]:
        if self.error is not None:
            raise self.error
        self.published.extend(batch)
        return [True] * len(batch)


async def _receiver(
    writer: FakeWriter, **fields: Any
) -> tuple[receiver.Receiver, list[webhooks.Delivery], workers.WorkerPool]:
    hook = webhooks.Webhook(id="w", name="n", template=TEMPLATE, slug="slug", **fields)
    known = directory.Directory(lambda: [hook])
    await known.refresh()
    written: list[webhooks.Delivery] = []

    async def write(batch: Sequence[webhooks.Delivery]) -> None:
        written.extend(batch)

    pool = workers.WorkerPool(1)
    pool.start()
    history = deliveries.DeliveryLog(write, keep=10)
    return receiver.Receiver(known, writer.publish, pool, history), written, pool


def _request(body: dict[str, Any], method: str = "POST", **headers: str) -> requests.Request:
    return requests.Request(method, requests.Headers(headers.items()), json.dumps(body).encode())


async def test_a_committed_request_is_204_and_recorded() -> None:
    writer = FakeWriter()
    rec, written, pool = await _receiver(writer)
    try:
        answer = await rec.handle("slug", _request({"n": 1}))
        assert answer.status == 204
        assert [e.resource["prefect.resource.id"] for e in writer.published] == ["r.1"]
        await rec._history.flush()
        assert written[0].status == 204 and written[0].event_ids == (writer.published[0].id,)
    finally:
        pool.stop()


@pytest.mark.parametrize(
    ("error", "retry_after"),
    [
        (errors.ResourceExhausted("busy", reason="INGEST_BACKLOG_FULL"), "1"),
        (errors.Unavailable("draining"), "5"),
    ],
)
async def test_backpressure_and_draining_are_503_with_retry_after(
    error: errors.AutomationsError, retry_after: str
) -> None:
    rec, _, pool = await _receiver(FakeWriter(error))
    try:
        answer = await rec.handle("slug", _request({"n": 1}))
        assert answer.status == 503
        assert dict(answer.headers)["Retry-After"] == retry_after
    finally:
        pool.stop()


async def test_unknown_and_disabled_webhooks_are_both_404() -> None:
    rec, _, pool = await _receiver(FakeWriter(), enabled=False)
    try:
        assert (await rec.handle("slug", _request({}))).status == 404
        assert (await rec.handle("other", _request({}))).status == 404
    finally:
        pool.stop()


async def test_a_template_failure_is_400_and_publishes_the_failed_event() -> None:
    writer = FakeWriter()
    rec, _, pool = await _receiver(writer)
    try:
        answer = await rec.handle("slug", _request({"n": 'a"b'}))  # an unescaped quote
        assert answer.status == 400
        assert "did not render valid JSON" in json.loads(answer.body)["error"]
        assert [e.event for e in writer.published] == ["prefect-cloud.webhook.failed"]
    finally:
        pool.stop()


async def test_the_rate_limit_answers_429_with_retry_after() -> None:
    rec, _, pool = await _receiver(FakeWriter(), rate_limit=1.0)
    try:
        assert (await rec.handle("slug", _request({"n": 1}))).status == 204
        limited = await rec.handle("slug", _request({"n": 2}))
        assert limited.status == 429 and int(dict(limited.headers)["Retry-After"]) >= 1
    finally:
        pool.stop()


async def test_options_is_only_the_cloudevents_handshake() -> None:
    writer = FakeWriter()
    rec, _, pool = await _receiver(writer)
    try:
        plain = await rec.handle("slug", _request({}, "OPTIONS"))
        assert plain.status == 405
        handshake = await rec.handle(
            "slug", _request({}, "OPTIONS", **{"WebHook-Request-Origin": "eventgrid.azure.net"})
        )
        assert handshake.status == 200
        assert dict(handshake.headers)["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
        assert writer.published == []
    finally:
        pool.stop()
