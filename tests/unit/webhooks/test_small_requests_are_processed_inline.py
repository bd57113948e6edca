"""Small requests are processed on the event loop; costly ones go to the worker threads."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from automations.domain import events, webhooks
from automations.webhooks import deliveries, directory, inline, receiver, requests, workers

T = TypeVar("T")

CHEAP = '{"event": "e", "resource": {"prefect.resource.id": "r.{{ body.n }}"}}'
COSTLY = (
    '{"event": "e", "resource": {"prefect.resource.id": "r.{{ body.n }}"}, "payload": {"s": '
    '"{% for a in range(100) %}{% for b in range(100) %}{{ a * b }}{% endfor %}{% endfor %}"}}'
)


class CountingPool(workers.WorkerPool):
    """The real pool, counting the jobs it ran and the threads they ran on."""

    def __init__(self) -> None:
        super().__init__(1)
        self.threads: list[int] = []

    async def run(self, fn: Callable[[], T]) -> T:
        def counted() -> T:
            self.threads.append(threading.get_ident())
            return fn()

        return await super().run(counted)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _receiver(
    template: str, clock: Clock
) -> tuple[receiver.Receiver, CountingPool, list[events.Event]]:
    hook = webhooks.Webhook(id="w", name="n", template=template, slug="slug")
    known = directory.Directory(lambda: [hook])
    await known.refresh()
    published: list[events.Event] = []

    async def publish(batch: Sequence[events.Event], prepared: Any) -> list[bool]:
        published.extend(batch)
        return [True] * len(batch)

    async def write(batch: Sequence[webhooks.Delivery]) -> None:
        pass

    pool = CountingPool()
    pool.start()
    policy = inline.InlinePolicy(max_body_bytes=1000, demote_seconds=60, clock=clock)
    rec = receiver.Receiver(
        known,
        publish,
        pool,
        deliveries.DeliveryLog(write, keep=10),
        inline_policy=policy,
    )
    return rec, pool, published


def _request(body: dict[str, Any]) -> requests.Request:
    return requests.Request("POST", requests.Headers(), json.dumps(body).encode())


async def test_a_small_request_never_leaves_the_event_loop() -> None:
    rec, pool, published = await _receiver(CHEAP, Clock())
    try:
        assert (await rec.handle("slug", _request({"n": 1}))).status == 204
        assert pool.threads == []
        assert published[0].resource["prefect.resource.id"] == "r.1"
    finally:
        pool.stop()


async def test_a_large_body_is_processed_on_a_worker_thread() -> None:
    rec, pool, published = await _receiver(CHEAP, Clock())
    try:
        answer = await rec.handle("slug", _request({"n": 2, "pad": "x" * 2000}))
        assert answer.status == 204
        assert len(pool.threads) == 1 and pool.threads[0] != threading.get_ident()
        assert published[0].resource["prefect.resource.id"] == "r.2"
    finally:
        pool.stop()


async def test_a_render_that_outruns_the_inline_budget_is_redone_with_the_full_one() -> None:
    clock = Clock()
    rec, pool, published = await _receiver(COSTLY, clock)
    try:
        answer = await rec.handle("slug", _request({"n": 3}))
        assert answer.status == 204  # rendered again on a thread, within the full budget
        assert len(pool.threads) == 1
        assert len(published) == 1 and len(published[0].payload["s"]) > 10_000
        await rec.handle("slug", _request({"n": 4}))  # the webhook now goes to the threads
        assert len(pool.threads) == 2
        clock.now += 61  # ... for demote_seconds, then it is tried inline again
        await rec.handle("slug", _request({"n": 5}))
        assert len(pool.threads) == 3 and len(published) == 3
    finally:
        pool.stop()


async def test_a_template_failing_inline_is_400_without_a_second_try() -> None:
    rec, pool, published = await _receiver('{"event": {{ body.n }}', Clock())
    try:
        answer = await rec.handle("slug", _request({"n": 1}))
        assert answer.status == 400
        assert pool.threads == []
        assert [e.event for e in published] == [webhooks.FAILED_EVENT]
    finally:
        pool.stop()
