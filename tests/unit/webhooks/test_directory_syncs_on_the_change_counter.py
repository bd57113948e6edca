"""The engine side's webhooks follow a change counter: a sync reloads only when it moved, a burst of
syncs shares one check, and a sync asked while a check runs waits for a check of its own."""

from __future__ import annotations

import asyncio
import threading
from typing import cast

from automations.domain import webhooks
from automations.webhooks import endpoint


class Store:
    """Webhooks and the counter their changes increment, counting the reads."""

    def __init__(self) -> None:
        self.hooks: list[webhooks.Webhook] = []
        self.counter = 0
        self.counter_reads = 0
        self.loads = 0
        self.hold: threading.Event | None = None

    def add(self, slug: str) -> None:
        self.hooks.append(webhooks.Webhook(id=slug, name=slug, template="{}", slug=slug))
        self.counter += 1

    def counted(self) -> int:
        self.counter_reads += 1
        value = self.counter
        if self.hold is not None:
            self.hold.wait(5)
        return value

    def load_all(self) -> list[webhooks.Webhook]:
        self.loads += 1
        return list(self.hooks)


class FakeEndpoint:
    def __init__(self) -> None:
        self.pushes = 0

    async def push_webhooks(self) -> None:
        self.pushes += 1


def _known(store: Store) -> tuple[endpoint.Webhooks, FakeEndpoint]:
    front = FakeEndpoint()
    known = endpoint.Webhooks(
        cast(endpoint.WebhookEndpoint, front), store.load_all, changes_counted=store.counted
    )
    return known, front


def test_a_sync_reloads_and_pushes_only_when_the_counter_moved() -> None:
    async def scenario() -> None:
        store = Store()
        known, front = _known(store)
        await known.load()
        await known.sync()
        assert (store.loads, front.pushes) == (1, 0)
        store.add("new")
        await known.sync()
        assert [w.slug for w in known.all()] == ["new"]
        assert (store.loads, front.pushes) == (2, 1)

    asyncio.run(scenario())


def test_a_burst_of_syncs_shares_one_check() -> None:
    async def scenario() -> None:
        store = Store()
        known, _ = _known(store)
        await known.load()
        reads = store.counter_reads
        await asyncio.gather(*(known.sync() for _ in range(50)))
        assert store.counter_reads - reads == 1

    asyncio.run(scenario())


def test_a_sync_asked_while_a_check_runs_sees_a_change_committed_before_it() -> None:
    async def scenario() -> None:
        store = Store()
        known, _ = _known(store)
        await known.load()
        store.hold = threading.Event()
        running = asyncio.ensure_future(known.sync())
        while store.counter_reads < 2:  # the running check has read the counter
            await asyncio.sleep(0.01)
        store.add("late")  # committed after that read, before the next sync is asked
        later = asyncio.ensure_future(known.sync())
        store.hold.set()
        store.hold = None
        await asyncio.gather(running, later)
        assert [w.slug for w in known.all()] == ["late"]

    asyncio.run(scenario())
