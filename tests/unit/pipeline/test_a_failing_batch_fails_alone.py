"""One client's batch that cannot be committed never fails the batches grouped with it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from automations.domain import errors, events
from automations.pipeline import writer


def ev(name: str) -> events.Event:
    return events.Event(id=name, event="x", occurred=0.0, resource={"prefect.resource.id": "r"})


class PoisonBackend(writer.Backend):
    """Fails any commit that holds an event named ``poison`` (or every one, when unavailable)."""

    def __init__(self, *, unavailable: bool = False) -> None:
        self.gate = threading.Event()
        self.committed: list[list[str]] = []
        self.attempts = 0
        self.recovered = 0
        self.unavailable = unavailable

    def commit_events(self, batch: Sequence[events.Event], now: float, **_: object) -> list[bool]:
        self.gate.wait(5)
        self.attempts += 1
        if self.unavailable:
            raise OSError(28, "No space left on device")
        if any(e.id.startswith("poison") for e in batch):
            raise OverflowError("the engine cannot take this event")
        self.committed.append([e.id for e in batch])
        return [True] * len(batch)

    def recover(self) -> None:
        self.recovered += 1

    def is_unavailable(self, exc: BaseException) -> bool:
        return isinstance(exc, OSError)


async def grouped(backend: PoisonBackend, batches: list[list[str]]) -> list[object]:
    """Publishes the batches so that they queue behind a held commit and form one group."""
    w = writer.Writer(backend, group_seconds=3600)
    w.start()
    try:
        first = asyncio.ensure_future(w.publish([ev("first")]))
        await asyncio.sleep(0.05)  # the writer now waits inside the first commit
        rest = [asyncio.ensure_future(w.publish([ev(n) for n in names])) for names in batches]
        await asyncio.sleep(0.05)
        backend.gate.set()
        await asyncio.gather(first, return_exceptions=True)
        return await asyncio.gather(*rest, return_exceptions=True)
    finally:
        w.stop()


async def test_the_poison_batch_alone_is_refused_and_its_neighbours_are_committed() -> None:
    backend = PoisonBackend()
    outcomes = await grouped(backend, [["a1", "a2"], ["poison"], ["b1"]])
    assert outcomes[0] == [True, True] and outcomes[2] == [True]
    assert isinstance(outcomes[1], errors.Unavailable)
    assert "cannot take" not in str(outcomes[1])  # internal error text stays in the log
    assert backend.committed == [["first"], ["a1", "a2"], ["b1"]]
    assert backend.recovered == 2  # after the group, and after the poison batch alone


async def test_an_unavailable_store_refuses_the_whole_group_at_once() -> None:
    backend = PoisonBackend(unavailable=True)
    outcomes = await grouped(backend, [["a1"], ["b1"], ["c1"]])
    assert all(isinstance(outcome, errors.Unavailable) for outcome in outcomes)
    assert backend.attempts == 2  # the first batch, then the group once: no retry one by one
